"""neuraloperator's 2D spectral convolution evaluated as truncated DFT matrix products.

``SpectralConv.forward`` takes the whole ``rfft2`` of its input, keeps ``m1 x (m2 // 2 + 1)``
modes, mixes channels per mode with its complex weights and inverts the zero-padded
spectrum with ``irfft2``. Only the kept modes matter, so the same numbers come from four
small matrix products over the kept frequencies, with no transform of the whole grid:

* forward, rows: ``Y[k1, w] = sum_h x[h, w] exp(-2 pi i k1 h / H) / (H W)`` for the
  ``m1`` row frequencies ``k1 = -m1 // 2 .. m1 - m1 // 2 - 1`` (neuraloperator's order of
  the weight's row axis after its ``fftshift``), with ``norm="forward"``'s ``1 / (H W)``;
* forward, columns: ``Z[k1, k2] = sum_w Y[k1, w] exp(-2 pi i k2 w / W)``, ``k2 = 0 .. K2 - 1``;
* per mode: ``O[o, k1, k2] = sum_i Z[i, k1, k2] weight[i, o, k1, k2]``;
* inverse: ``out[o, h, w] = Re sum_{k1, k2} c_k2 O[o, k1, k2] exp(2 pi i (k1 h / H + k2 w / W))``
  with ``c_k2 = 2``, except 1 for ``k2 = 0`` and a kept Nyquist column (``irfft``'s
  Hermitian completion, which also drops those columns' imaginary parts), plus the bias.

The products run on the channels-last view ``(B, H, W, C)`` of the activations and
return a channels-last tensor, so a generator kept in channels-last order stays in it (a
whole-grid FFT would need the channels-first order). What it buys is measured by
``scripts/benchmarks/precision.py`` (``docs/results/2026-12-speed.md``). The weights are
neuraloperator's own parameters: the module, its state dict and its checkpoints are
unchanged. Float32 in, float32 out.
"""
from __future__ import annotations

import math

import torch


def uses_dft_form(conv, x: torch.Tensor) -> bool:
    """Whether :func:`spectral_conv_dft` computes exactly what ``conv(x)`` computes: a dense,
    non-separable 2D ``SpectralConv`` on real data, full precision, no resolution scaling,
    every kept mode inside the input's spectrum."""
    if getattr(conv, "order", None) != 2 or conv.complex_data or conv.separable:
        return False
    if conv.fno_block_precision != "full" or conv.resolution_scaling_factor is not None:
        return False
    if conv.fft_norm != "forward" or not hasattr(conv.weight, "to_tensor"):
        return False
    if list(conv.max_n_modes) != list(conv.n_modes) or x.ndim != 4:
        return False
    k1, k2 = conv.n_modes
    h, w = x.shape[-2:]
    return k1 <= h and k2 <= w // 2 + 1


def _dft_matrices(h: int, w: int, k1: int, k2: int, device: torch.device):
    """The four matrices of the module docstring, built in float64 and rounded once."""
    d = torch.float64
    f1 = torch.arange(k1, dtype=d) - k1 // 2
    a1 = 2 * math.pi * f1[:, None] * torch.arange(h, dtype=d)[None, :] / h       # (k1, h)
    a2 = 2 * math.pi * torch.arange(w, dtype=d)[:, None] * torch.arange(k2, dtype=d) / w
    rows_trig = torch.cat([torch.cos(a1), -torch.sin(a1)])                      # (2 k1, h)
    cols = torch.complex(torch.cos(a2), -torch.sin(a2))                          # (w, k2)
    weight = torch.full((k2,), 2.0, dtype=d)
    weight[0] = 1.0
    if w % 2 == 0 and k2 - 1 == w // 2:
        weight[-1] = 1.0
    cols_inv = (cols.conj() * weight).T                                          # (k2, w)
    return ((rows_trig / (h * w)).float().to(device), cols.to(torch.complex64).to(device),
            cols_inv.to(torch.complex64).contiguous().to(device),
            rows_trig.T.float().contiguous().to(device))                        # (h, 2 k1)


def _real_block_weight(weight: torch.Tensor) -> torch.Tensor:
    """Complex ``(C, O, k1, k2)`` weights as the real ``(k1 k2, 2 C, 2 O)`` blocks
    ``[[Re, Im], [-Im, Re]]``, so that ``[Re z, Im z] @ block = [Re zw, Im zw]`` per mode
    (a real batched product: torch's complex one loops over the modes in Python-side ops)."""
    c_in, c_out, k1, k2 = weight.shape
    w = weight.permute(2, 3, 0, 1).reshape(k1 * k2, c_in, c_out)
    re, im = w.real, w.imag
    return torch.cat([torch.cat([re, im], dim=2), torch.cat([-im, re], dim=2)], dim=1)


def spectral_conv_dft(conv, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a neuraloperator ``SpectralConv`` that :func:`uses_dft_form`, as
    matrix products; ``x`` float32 ``(B, C, H, W)`` (channels-last order is the fast one),
    the result float32 ``(B, O, H, W)`` in channels-last order."""
    return spectral_conv_dft_hwc(conv, x).permute(0, 3, 1, 2)


def spectral_conv_dft_hwc(conv, x: torch.Tensor, *, in_place: bool = False) -> torch.Tensor:
    """:func:`spectral_conv_dft` as the contiguous ``(B, H, W, O)`` tensor itself (the base
    of its channels-last result), for callers that go on in place. ``in_place`` (no
    autograd) adds the bias in place along the contiguous ``W * O`` axis: the same sums,
    one pass over memory fewer."""
    weight = conv.weight.to_tensor()                       # (C, O, k1, k2) complex64
    c_in, c_out, k1, k2 = weight.shape
    b, c, h, w = x.shape
    rows, cols, cols_inv, rows_inv = _dft_matrices(h, w, k1, k2, x.device)
    y = torch.matmul(rows, x.permute(0, 2, 3, 1).reshape(b, h, w * c))    # (b, 2 k1, w c)
    y = y.view(b, 2, k1, w, c)
    y = torch.complex(y[:, 0], y[:, 1]).transpose(2, 3).reshape(b * k1 * c, w)
    z = torch.matmul(y, cols).view(b, k1, c, k2)                           # spectrum
    z = torch.view_as_real(z).permute(1, 3, 0, 4, 2).reshape(k1 * k2, b, 2 * c)
    o = torch.bmm(z, _real_block_weight(weight))                        # (k1 k2, b, 2 o)
    o = o.view(k1, k2, b, 2, c_out)
    o = torch.complex(o[:, :, :, 0], o[:, :, :, 1])
    o = o.permute(2, 0, 3, 1).reshape(b * k1 * c_out, k2)
    r = torch.matmul(o, cols_inv).view(b, k1, c_out, w).transpose(2, 3)     # (b, k1, w, o)
    r = torch.view_as_real(r).permute(0, 4, 1, 2, 3).reshape(b, 2 * k1, w * c_out)
    out = torch.matmul(rows_inv, r)                                         # (b, h, w o)
    if conv.bias is not None:   # (O, 1, 1): added along the contiguous last axis
        if not in_place:
            return out.view(b, h, w, c_out) + conv.bias.reshape(c_out)
        out.add_(conv.bias.reshape(c_out).repeat(w))
    return out.view(b, h, w, c_out)
