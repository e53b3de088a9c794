"""Building blocks shared by the generators, and the complex output head.

Every generator maps a float32 diffraction-amplitude tensor ``(B, C, N, N)`` (DC centred)
to complex64 object patches ``(B, C, N, N)``; the last layer is always
:class:`ComplexOutputHead`, so the two output representations behave identically across
architectures.

Precision (:mod:`ptycho_torch.core.precision`): under ``bf16-mixed`` autocast runs the
convolutions in bfloat16; the spectral convolution and the output head open float32
islands, so the output is complex64 under either precision.

Determinism note: nothing here uses ``F.interpolate``; its CUDA backward has no
deterministic implementation and would raise under ``torch.use_deterministic_algorithms``
(which Lightning's ``deterministic=True`` turns on). Nearest 2x upsampling is done by
``expand`` + ``reshape`` (:func:`upsample_nearest2x`), whose backward is a plain sum.

``neuralop`` (slow to import: it imports wandb) is imported only when a
:class:`SpectralBlock` is built, so importing this module stays cheap.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from scipy.special import lambertw
from torch import nn

from ptycho_torch.core.precision import float32_island
from ptycho_torch.generators.channels_last import gelu, is_channels_last
from ptycho_torch.generators.spectral_dft import (spectral_conv_dft, spectral_conv_dft_hwc,
                                                   uses_dft_form)

RESIDUAL_BRANCH_GAIN = 0.3


def check_generator_input(x: torch.Tensor, channels: int, N: int, owner: str) -> None:
    """Refuse anything but a float32 ``(B, channels, N, N)`` tensor (one-line ValueError)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{owner} input must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype != torch.float32:
        raise ValueError(f"{owner} input dtype={x.dtype} is not allowed (allowed: torch.float32)")
    if x.ndim != 4 or tuple(x.shape[1:]) != (channels, N, N):
        raise ValueError(f"{owner} input shape={tuple(x.shape)} is not allowed "
                         f"(allowed: (B, {channels}, {N}, {N}))")


def conv3x3(in_ch: int, out_ch: int, padding_mode: str = "zeros", stride: int = 1) -> nn.Conv2d:
    """3x3 convolution that keeps the size (``stride`` 1) or halves it (``stride`` 2)."""
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, padding_mode=padding_mode)


def upsample_nearest2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling ``(B, C, H, W) -> (B, C, 2H, 2W)``, deterministic on CUDA."""
    b, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)


def init_conv_weights(module: nn.Module) -> None:
    """He (Kaiming-normal, ReLU gain) init of every Conv2d / ConvTranspose2d in ``module``.

    PyTorch's default conv init shrinks the activations by ~sqrt(6) per ReLU layer (the
    12-conv CNN baseline started with output variations ~1e-4); He init keeps them O(1)
    (a fair approximation for GELU too). Biases are zeroed. The fan-in of a transposed
    convolution is ``in_ch * (k / stride)**2`` (inputs that reach one output pixel).
    Call it before building the :class:`ComplexOutputHead` (or on modules that exclude
    it): the head keeps its own small init. neuraloperator's SpectralConv keeps its own.

    Residual branches are then damped so a stack of blocks does not double the
    activation variance per block: the last conv of each :class:`ResidualConvBlock` and
    the local conv of each :class:`SpectralBlock` are multiplied by
    ``RESIDUAL_BRANCH_GAIN`` (0.3).
    """
    for m in module.modules():
        if isinstance(m, nn.ConvTranspose2d):
            kh, kw = m.kernel_size
            sh, sw = m.stride
            fan_in = m.in_channels * max(1.0, (kh / sh) * (kw / sw))
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_in))
        elif isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, ResidualConvBlock):
                m.conv2.weight.mul_(RESIDUAL_BRANCH_GAIN)
            elif isinstance(m, SpectralBlock):
                m.local.weight.mul_(RESIDUAL_BRANCH_GAIN)


class UpsampleNearest2x(nn.Module):
    """Module form of :func:`upsample_nearest2x` (no parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_nearest2x(x)


class ResidualConvBlock(nn.Module):
    """``x + conv3x3(GELU(conv3x3(x)))`` at constant width and resolution.

    Shapes: ``(B, ch, H, W) -> (B, ch, H, W)`` float32.
    """

    def __init__(self, ch: int, padding_mode: str = "zeros") -> None:
        super().__init__()
        self.conv1 = conv3x3(ch, ch, padding_mode)
        self.conv2 = conv3x3(ch, ch, padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(gelu(self.conv1(x)))


class SpectralBlock(nn.Module):
    """FNO block ``x + GELU(SpectralConv(x) + Conv3x3(x))`` at constant width.

    ``spectral`` is neuraloperator's ``SpectralConv`` (dense complex64 weights, no
    factorization, no positional embedding anywhere); ``n_modes=(m1, m2)`` is passed as
    given, and neuraloperator keeps ``m1`` modes on the row axis (centred on DC) and
    ``m2 // 2 + 1`` on the column (rfft) axis; its ``n_modes`` attribute reports
    ``[m1, m2 // 2 + 1]``. The spectral path runs in float32 under any precision.
    Shapes: ``(B, width, H, W)`` -> same.
    In channels-last order (:func:`to_channels_last`) the block keeps its activations in
    that order and evaluates the spectral convolution as truncated DFT products
    (:mod:`ptycho_torch.generators.spectral_dft`: the same numbers to float32 rounding, no
    reordering for a whole-grid FFT).
    ``padding_mode`` of the local path: ``"circular"`` keeps the block exactly equivariant
    to circular shifts (the spectral path is), ``"zeros"`` is the usual CNN choice.
    """

    def __init__(self, width: int, n_modes: Sequence[int], padding_mode: str = "zeros") -> None:
        super().__init__()
        from neuralop.layers.spectral_convolution import SpectralConv

        self.spectral = SpectralConv(width, width, n_modes=tuple(int(m) for m in n_modes))
        self.local = conv3x3(width, width, padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels_last = is_channels_last(self.local)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        dft = channels_last and uses_dft_form(self.spectral, x)
        if dft and not torch.is_grad_enabled():
            return self._forward_in_place(x)
        with float32_island(x.device.type):  # FFTs and complex weights: float32 always
            if dft:
                spectral = spectral_conv_dft(self.spectral, x.float())
            else:
                spectral = self.spectral(x.float())
        return x + gelu(spectral + self.local(x))

    def _forward_in_place(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` without autograd, in channels-last order: the same additions
        and GELU (bit for bit), done in place on the contiguous ``(B, H, W, C)`` result
        of the spectral path, so inference makes one buffer per block instead of four."""
        with float32_island(x.device.type):
            h = spectral_conv_dft_hwc(self.spectral, x.float(), in_place=True)
        h.add_(self.local(x).permute(0, 2, 3, 1))
        torch.ops.aten.gelu_(h)
        return h.add_(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Generator(nn.Module):
    """The interface every generator implements (the base of the registry's classes).

    * ``forward(x)``: float32 ``(B, C, N, N)`` measured amplitudes -> complex64
      ``(B, C, N, N)`` object patches;
    * ``head``: its :class:`ComplexOutputHead`;
    * :meth:`set_initial_amplitude`: start from a uniform object of a given amplitude
      (training calls it once, with the data's Parseval estimate, before the first step).
    """

    head: "ComplexOutputHead"

    def set_initial_amplitude(self, amplitude: float) -> None:
        """The uniform starting object ``amplitude * exp(0j)`` for a zero feature map
        (see :meth:`ComplexOutputHead.set_initial_amplitude`)."""
        self.head.set_initial_amplitude(amplitude)


class ComplexOutputHead(nn.Module):
    """1x1 convolution to ``2 * channels`` maps, read as one complex patch per channel.

    Input ``(B, in_ch, N, N)`` float32 -> output ``(B, channels, N, N)`` complex64.
    Output map ``2c`` / ``2c + 1`` belong to patch ``c``:

    * ``real_imag``: (real part, imaginary part), used as they are.
    * ``amp_phase``: amplitude ``amp_max * sigmoid(a)`` in (0, amp_max) and phase
      ``pi * tanh(p)`` in (-pi, pi) (the reference's parameterisation, with ``amp_max``
      a buffer, 1 by default; :meth:`set_initial_amplitude` sets it to twice the data's
      amplitude scale so objects brighter than 1 are representable).
    * ``amp_silu_phase``: amplitude ``silu(a) = a * sigmoid(a)`` (unbounded above, down to
      -0.2785 below) and phase ``pi * tanh(p)``, as upstream PtychoPINN's torch CNN with
      ``amp_activation='silu'``; the patch is ``silu(a) * exp(i phase)``, so a negative
      amplitude reads as modulus ``|silu(a)|`` at phase ``+ pi`` (upstream multiplies the
      same way). ``amp_max`` is not used.

    Initialisation (so training starts from a sensible uniform object): the 1x1 weights
    are normal with std ``init_gain / sqrt(in_ch)`` (``init_gain`` 0.1: features of unit
    RMS give outputs that vary by ~0.1), biases are zero except the amplitude bias
    of ``real_imag`` (the real part), which is ``real_bias`` (0.5), and of
    ``amp_silu_phase``, which is ``silu^-1(real_bias)`` (0.7388). Either way the initial
    object is about ``0.5 * exp(0j)`` with ~0.1 variations: amplitude O(0.1-1) like the
    true objects (~0.1-2), phase near 0, and a predicted diffraction ``0.5 |F(P)|`` that
    is already the right kind of pattern. (For ``amp_phase`` the zero logit gives
    sigmoid(0) = 0.5.)
    """

    def __init__(self, in_ch: int, channels: int, mode: str = "real_imag", *,
                 init_gain: float = 0.1, real_bias: float = 0.5) -> None:
        super().__init__()
        if mode not in OUTPUT_MODES:
            allowed = ", ".join(repr(m) for m in OUTPUT_MODES)
            raise ValueError(f"generator_output_mode={mode!r} is not allowed (choose one of: {allowed})")
        self.channels = int(channels)
        self.mode = mode
        self.proj = nn.Conv2d(in_ch, 2 * self.channels, 1)
        self.register_buffer("amp_max", torch.tensor(1.0))
        with torch.no_grad():
            self.proj.weight.normal_(0.0, init_gain / math.sqrt(in_ch))
            self.proj.bias.zero_()
            self.proj.bias[0::2] = self._amplitude_bias(real_bias)

    def _amplitude_bias(self, amplitude: float) -> float:
        """The first map's bias that reads as ``amplitude`` (``amp_phase``: 0, i.e. amp_max / 2)."""
        if self.mode == "real_imag":
            return amplitude
        if self.mode == "amp_silu_phase":
            return silu_inverse(amplitude)
        return 0.0

    def set_initial_amplitude(self, amplitude: float) -> None:
        """Set the biases so a zero feature map gives the uniform object ``amplitude * exp(0j)``.

        Use it right after building a generator when the data's object amplitude scale is
        known (e.g. from Parseval: ``mean|O| ~ sqrt(mean_n sum A_n^2 / sum |P|^2)``).
        ``real_imag``: the real-part bias becomes ``amplitude``; ``amp_phase``: ``amp_max``
        becomes ``2 * amplitude`` and the amplitude logit bias 0 (sigmoid(0) = 1/2);
        ``amp_silu_phase``: the amplitude bias becomes ``silu^-1(amplitude)``.
        """
        amplitude = float(amplitude)
        if not (0.0 < amplitude < math.inf):
            raise ValueError(f"set_initial_amplitude: amplitude={amplitude!r} is out of range "
                             "(allowed: > 0 and finite)")
        with torch.no_grad():
            self.proj.bias[0::2] = self._amplitude_bias(amplitude)
            if self.mode == "amp_phase":
                self.amp_max.fill_(2.0 * amplitude)
            self.proj.bias[1::2] = 0.0

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, _, n1, n2 = h.shape
        with float32_island(h.device.type):  # complex64 out, under any precision
            out = self.proj(h.float()).reshape(b, self.channels, 2, n1, n2)
            return OUTPUT_READERS[self.mode](self, out[:, :, 0], out[:, :, 1])


def _read_real_imag(head: ComplexOutputHead, first: torch.Tensor, second: torch.Tensor):
    """(real part, imaginary part), used as they are."""
    return torch.complex(first, second)


def _read_amp_phase(head: ComplexOutputHead, first: torch.Tensor, second: torch.Tensor):
    """amplitude ``amp_max * sigmoid(first)``, phase ``pi * tanh(second)``."""
    return torch.polar(head.amp_max * torch.sigmoid(first), math.pi * torch.tanh(second))


def _read_amp_silu_phase(head: ComplexOutputHead, first: torch.Tensor, second: torch.Tensor):
    """amplitude ``silu(first)`` (may be slightly negative), phase ``pi * tanh(second)``;
    the patch is ``amplitude * exp(i phase)`` (``torch.polar`` wants amplitude >= 0)."""
    amp, phase = F.silu(first), math.pi * torch.tanh(second)
    return torch.complex(amp * torch.cos(phase), amp * torch.sin(phase))


def silu_inverse(y: float) -> float:
    """The ``x > 0`` with ``silu(x) = x * sigmoid(x) = y`` for ``y > 0``: ``y + W0(y e^-y)``
    (from ``x - y = y e^-x``; W0 is the principal branch of Lambert's W)."""
    return y + float(lambertw(y * math.exp(-y)).real)


#: How the head reads its two output maps per patch, keyed by ``generator_output_mode``
#: (keys = ptycho.config.choices.OUTPUT_MODES, tested).
OUTPUT_READERS = {"real_imag": _read_real_imag, "amp_phase": _read_amp_phase,
                  "amp_silu_phase": _read_amp_silu_phase}
OUTPUT_MODES = tuple(OUTPUT_READERS)
