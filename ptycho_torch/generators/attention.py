"""Convolutional block attention (CBAM): a channel gate, then a spatial gate.

Both gates are sigmoids multiplying the features, so each lies in (0, 1)::

    channel gate  g_c = sigmoid(MLP(mean_hw x) + MLP(max_hw x))     (B, ch, 1, 1)
                  MLP: Linear ch -> max(1, ch // reduction) -> ReLU -> Linear -> ch (shared)
    spatial gate  g_s = sigmoid(Conv_kxk([mean_ch y, max_ch y]))     (B, 1, H, W), no bias
    CBAM(x) = y * g_s(y)  with  y = x * g_c(x)

Defaults as upstream PtychoPINN's torch CNN (``cbam_encoder``): reduction 16, a 7 x 7
spatial kernel, zero ("same") padding. Shapes ``(B, ch, H, W) -> (B, ch, H, W)`` float32.

``ENCODER_ATTENTIONS`` maps ``ModelConfig.encoder_attention`` to the blocks appended after
each encoder level of :class:`~ptycho_torch.generators.cnn.CNNGenerator` (keys =
``ptycho.config.choices.ENCODER_ATTENTIONS``, tested); ``"none"`` appends nothing, so the
module names (and old checkpoints' state dicts) of the plain CNN are unchanged.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

CBAM_REDUCTION = 16
CBAM_SPATIAL_KERNEL = 7


class ChannelGate(nn.Module):
    """Channel attention: one weight per (sample, channel) from its mean and max over H, W."""

    def __init__(self, channels: int, reduction: int = CBAM_REDUCTION) -> None:
        super().__init__()
        hidden = max(1, int(channels) // int(reduction))
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The gate ``(B, ch, 1, 1)`` in (0, 1)."""
        logits = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))
        return torch.sigmoid(logits)[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class SpatialGate(nn.Module):
    """Spatial attention: one weight per (sample, pixel) from the channel mean and max maps."""

    def __init__(self, kernel_size: int = CBAM_SPATIAL_KERNEL) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The gate ``(B, 1, H, W)`` in (0, 1)."""
        maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(maps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class CBAM(nn.Module):
    """:class:`ChannelGate` then :class:`SpatialGate` (see the module docstring)."""

    def __init__(self, channels: int, reduction: int = CBAM_REDUCTION,
                 kernel_size: int = CBAM_SPATIAL_KERNEL) -> None:
        super().__init__()
        self.channel = ChannelGate(channels, reduction)
        self.spatial = SpatialGate(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


#: ``encoder_attention`` -> the blocks (a list, possibly empty) for a level of ``channels``.
ENCODER_ATTENTIONS: dict[str, Callable[[int], list[nn.Module]]] = {
    "none": lambda channels: [],
    "cbam": lambda channels: [CBAM(channels)],
}
