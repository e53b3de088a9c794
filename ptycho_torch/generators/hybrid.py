"""Hybrid generator: FNO-style encoder with downsampling, residual bottleneck, CNN decoder.

The reference study's strongest architecture (spectral encoder + ResNet bottleneck +
up-sampling CNN decoder with skips). Layout for ``L`` downsampling levels (``L = 2`` for
N >= 32, ``L = 1`` for N = 16, so the lowest resolution is N/4, or 8 at N = 16)::

    x (B, C, N, N) float32
      -> lift 1x1 conv C -> w0                                   level 0, N x N
      -> level l = 0..L: spectral blocks  h + GELU(SpectralConv(h) + Conv3x3(h))
         (the level's output is kept as the skip s_l), then, if l < L,
         down: Conv3x3 stride 2 (w_l -> w_{l+1}) + GELU            N/2**l -> N/2**(l+1)
      -> bottleneck: fno_cnn_blocks x  h + Conv3x3(GELU(Conv3x3(h)))   at N / 2**L
      -> decoder, l = L-1..0: ConvTranspose 2x2 stride 2 (w_{l+1} -> w_l) + GELU,
         concat skip s_l, Conv3x3 (2 w_l -> w_l) + GELU, Conv3x3 (w_l -> w_l) + GELU
      -> ComplexOutputHead -> (B, C, N, N) complex64

Hyperparameters:

* ``fno_width``: width w0 of level 0. Level l has ``w_l = min(w0 * 2**l, max(w0, 256))``
  (doubles per level, capped at 256 channels unless w0 itself is larger; with at most
  two downsamplings this is also <= 4 * w0). Defaults: 32, 64, 128.
* ``fno_blocks``: total number of spectral blocks (= neuraloperator ``SpectralConv``
  modules) in the encoder, spread as evenly as possible over the L + 1 levels, the
  remainder going to the highest-resolution levels (default 4 -> [2, 1, 1]; 1 -> [1, 0, 0]).
* ``fno_modes``: Fourier modes per axis of each SpectralConv, ``min(fno_modes, res // 2)``
  at a level of resolution ``res`` (default 12, 12, 8 at N = 64). neuraloperator keeps m
  modes on the row axis and m // 2 + 1 on the column (rfft) axis.
* ``fno_cnn_blocks``: number of residual conv blocks in the bottleneck (0 allowed).

Zero padding in the local convolutions (the stride-2 path is not shift-equivariant
anyway). Upsampling is a transposed convolution, not ``F.interpolate``, whose CUDA
backward is non-deterministic (Lightning ``deterministic=True`` would raise). Defaults
(N 64, gridsize 1): 3.41 M real parameters (complex weights counted twice; 1.69 M of them
are the spectral weights, mostly at levels 1 and 2), ~0.58 GMAC of convolutions per
patch. Convolutions are He-initialised and residual branches damped (see
``layers.init_conv_weights``). Float32 input only.
"""
from __future__ import annotations

import torch
from torch import nn

from ptycho_torch.generators.channels_last import (channels_last_grad, gelu, is_channels_last,
                                                    lift, module_channels_last)
from ptycho_torch.generators.layers import (
    ComplexOutputHead,
    Generator,
    ResidualConvBlock,
    SpectralBlock,
    check_generator_input,
    conv3x3,
    init_conv_weights,
)

MAX_LEVEL_WIDTH = 256


def num_levels(N: int) -> int:
    """Downsampling levels L: 2, or fewer so the lowest resolution stays >= 8 (N=16 -> 1)."""
    levels = 0
    while levels < 2 and N // 2 ** (levels + 1) >= 8:
        levels += 1
    return levels


def level_widths(width: int, levels: int) -> list[int]:
    """Channel width per level 0..levels: doubling, capped at max(width, 256) and 4*width."""
    cap = max(width, MAX_LEVEL_WIDTH)
    return [min(width * 2 ** lvl, cap, 4 * width) for lvl in range(levels + 1)]


def blocks_per_level(n_blocks: int, levels: int) -> list[int]:
    """Spread ``n_blocks`` over ``levels + 1`` levels; remainder to the shallow levels."""
    n_lv = levels + 1
    base, rem = divmod(n_blocks, n_lv)
    return [base + (1 if lvl < rem else 0) for lvl in range(n_lv)]


class _Up(nn.Module):
    """Decoder step: upsample 2x (transposed conv), concat skip, two 3x3 convs."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, out_ch, 2, stride=2)
        self.conv1 = conv3x3(2 * out_ch, out_ch)
        self.conv2 = conv3x3(out_ch, out_ch)

    def forward(self, h: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        h = gelu(self.up(h))
        skip = skip.to(h.dtype)  # what conv1's autocast would cast it to: the same numbers
        if is_channels_last(self.conv1):
            h, skip = channels_last_grad(h), channels_last_grad(skip)
        h = gelu(self.conv1(torch.cat([h, skip], dim=1)))
        return gelu(self.conv2(h))


class HybridGenerator(Generator):
    """Spectral encoder + residual bottleneck + CNN decoder; see the module docstring.

    Attributes for inspection: ``widths`` (per level), ``modes`` (per level),
    ``blocks_per_level``, ``lift``, ``encoder`` (ModuleList per level of ModuleList of
    :class:`SpectralBlock`), ``down`` (stride-2 convs), ``spectral_layers`` (list of all
    neuraloperator ``SpectralConv`` modules, ``len == fno_blocks``), ``bottleneck_blocks``
    (ModuleList, ``len == fno_cnn_blocks``), ``decoder`` (ModuleList of up steps), ``head``.
    """

    def __init__(self, model_config) -> None:
        super().__init__()
        c = int(model_config.gridsize) ** 2
        n = int(model_config.N)
        width = int(model_config.fno_width)
        self.channels, self.N = c, n
        self.levels = num_levels(n)
        self.widths = level_widths(width, self.levels)
        self.modes = [max(1, min(int(model_config.fno_modes), (n // 2 ** lvl) // 2))
                      for lvl in range(self.levels + 1)]
        self.blocks_per_level = blocks_per_level(int(model_config.fno_blocks), self.levels)

        self.lift = nn.Conv2d(c, self.widths[0], 1)
        self.encoder = nn.ModuleList(
            nn.ModuleList(SpectralBlock(w, (m, m)) for _ in range(k))
            for w, m, k in zip(self.widths, self.modes, self.blocks_per_level))
        self.down = nn.ModuleList(
            conv3x3(self.widths[lvl], self.widths[lvl + 1], stride=2) for lvl in range(self.levels))
        self.bottleneck_blocks = nn.ModuleList(
            ResidualConvBlock(self.widths[-1]) for _ in range(model_config.fno_cnn_blocks))
        # decoder[i] goes from level L-i to level L-i-1
        self.decoder = nn.ModuleList(
            _Up(self.widths[lvl + 1], self.widths[lvl]) for lvl in reversed(range(self.levels)))
        init_conv_weights(self)  # before the head, which keeps its own init
        self.head = ComplexOutputHead(self.widths[0], c, model_config.generator_output_mode)

    @property
    def spectral_layers(self) -> list:
        """All neuraloperator ``SpectralConv`` modules, shallow level first."""
        return [block.spectral for level in self.encoder for block in level]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, N, N) float32 -> object patches (B, C, N, N) complex64."""
        check_generator_input(x, self.channels, self.N, "HybridGenerator")
        h = lift(self.lift, x, module_channels_last(self))
        skips = []
        for lvl, blocks in enumerate(self.encoder):
            for block in blocks:
                h = block(h)
            if lvl < self.levels:
                skips.append(h)
                h = gelu(self.down[lvl](h))
        for block in self.bottleneck_blocks:
            h = block(h)
        for up, skip in zip(self.decoder, reversed(skips)):
            h = up(h, skip)
        return self.head(h)
