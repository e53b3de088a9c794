"""The generators in channels-last memory order: putting a module's convolutions in it,
asking whether they are, and the small layers whose plain torch call is slow in that order.

``--channels-last`` (``TrainingConfig.channels_last``) keeps the convolution weights and
the generator's activations in channels-last order (``(B, H, W, C)`` in memory). A few
torch kernels are much slower on such tensors than on contiguous ones, or hand back the
other order; each function here computes exactly what the plain call computes, in the
order that is fast (``scripts/benchmarks/channels_last_ops.py`` measures each pair,
``tests/ptycho_torch/generators/test_layers_channels_last.py`` checks each equality).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ptycho_torch.core.precision import float32_island


def to_channels_last(module: nn.Module) -> nn.Module:
    """Every convolution weight of ``module`` in channels-last order (``(out, kh, kw, in)``
    in memory; the spectral weights stay as they are); returns ``module``. Loading a state
    dict later copies into these tensors and keeps their order."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.to(memory_format=torch.channels_last)
    return module


def is_channels_last(conv: nn.Conv2d) -> bool:
    """Whether ``conv``'s weight is in channels-last order (:func:`to_channels_last`); a
    weight of one input channel and a 1 x 1 kernel is both orders, so ask a wider one."""
    weight = conv.weight
    return weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def module_channels_last(module: nn.Module) -> bool:
    """Whether ``module``'s convolutions are in channels-last order, asked of its first
    convolution with a kernel wider than 1 x 1 (:func:`is_channels_last`); False if none."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and tuple(m.kernel_size) != (1, 1):
            return is_channels_last(m)
    return False


class _ChannelsLastGrad(torch.autograd.Function):
    """Identity forward; the backward hands the gradient on in channels-last order."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=torch.channels_last)


def channels_last_grad(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself, whose gradient arrives in channels-last order. Put it before a
    ``torch.cat`` along channels: the backward of the cat slices channels out of a
    channels-last gradient, an order no kernel expects, and GELU's backward on it runs
    about 10x slower than on either order."""
    return _ChannelsLastGrad.apply(x)


def gelu(x: torch.Tensor) -> torch.Tensor:
    """``F.gelu(x)``; a channels-last ``x`` goes through its contiguous ``(B, H, W, C)`` view
    and comes back channels-last. Same function: torch's GELU kernels are faster on a
    contiguous tensor (``scripts/benchmarks/channels_last_ops.py``)."""
    if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return F.gelu(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    return F.gelu(x)


def lift(conv: nn.Conv2d, x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """The generator's lifting 1 x 1 convolution ``conv`` applied to the input ``x``.

    In channels-last order it is evaluated on the contiguous ``(B, H, W, C)`` view as a
    float32 product, with no autocast: one multiply-add per output for a single input
    channel. oneDNN's 1 x 1 convolution from one channel is several times slower
    (``scripts/benchmarks/channels_last_ops.py``) and returns the input's (channels-first)
    order, which the first block then has to copy."""
    if not channels_last:
        return conv(x)
    out_ch, in_ch = conv.weight.shape[:2]
    with float32_island(x.device.type):
        h = x.permute(0, 2, 3, 1)
        weight = conv.weight.reshape(out_ch, in_ch)
        bias = conv.bias if conv.bias is not None else weight.new_zeros(out_ch)
        if in_ch == 1:
            y = torch.addcmul(bias, h, weight.reshape(out_ch))
        else:
            y = F.linear(h, weight, bias)
        return y.permute(0, 3, 1, 2)
