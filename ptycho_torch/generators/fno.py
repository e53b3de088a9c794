"""FNO generator: neuraloperator spectral blocks + convolutional refiners + complex head.

Architecture (all at full resolution N x N, width ``fno_width``)::

    x (B, C, N, N) float32
      -> lift: 1x1 conv C -> fno_width               (no positional grid channels)
      -> fno_blocks x  h + GELU(SpectralConv(h) + Conv3x3(h))
      -> fno_cnn_blocks x  h + Conv3x3(GELU(Conv3x3(h)))      (refiners)
      -> ComplexOutputHead -> (B, C, N, N) complex64

``SpectralConv`` is neuraloperator's own layer (``neuralop.layers.spectral_convolution``),
dense complex64 weights, ``n_modes=(fno_modes, fno_modes)``: it keeps ``fno_modes``
frequencies on the row axis (centred on DC) and ``fno_modes // 2 + 1`` on the column
(rfft) axis and reports ``n_modes == [fno_modes, fno_modes // 2 + 1]``.

Every local convolution uses circular padding, so the whole network commutes with
circular shifts of the input (the spectral path is a circular convolution, and there is
no positional embedding): ``G(roll(x)) == roll(G(x))``. Float32 input only (the spectral
weights are complex64).
"""
from __future__ import annotations

import torch
from torch import nn

from ptycho_torch.generators.channels_last import lift, module_channels_last
from ptycho_torch.generators.layers import (
    ComplexOutputHead,
    Generator,
    ResidualConvBlock,
    SpectralBlock,
    check_generator_input,
    init_conv_weights,
)

PADDING_MODE = "circular"


class FNOGenerator(Generator):
    """Plain FNO + refiners; see the module docstring.

    Attributes for inspection: ``lift`` (Conv2d), ``blocks`` (ModuleList of
    :class:`SpectralBlock`), ``spectral_layers`` (list of the neuraloperator
    ``SpectralConv`` modules, one per block), ``refiners`` (ModuleList of
    :class:`ResidualConvBlock`), ``head`` (:class:`ComplexOutputHead`).
    """

    def __init__(self, model_config) -> None:
        super().__init__()
        c = int(model_config.gridsize) ** 2
        width = int(model_config.fno_width)
        modes = int(model_config.fno_modes)
        self.channels = c
        self.N = int(model_config.N)
        self.lift = nn.Conv2d(c, width, 1)
        self.blocks = nn.ModuleList(
            SpectralBlock(width, (modes, modes), PADDING_MODE) for _ in range(model_config.fno_blocks))
        self.refiners = nn.ModuleList(
            ResidualConvBlock(width, PADDING_MODE) for _ in range(model_config.fno_cnn_blocks))
        init_conv_weights(self)  # before the head, which keeps its own init
        self.head = ComplexOutputHead(width, c, model_config.generator_output_mode)

    @property
    def spectral_layers(self) -> list:
        """The neuraloperator ``SpectralConv`` modules, in order."""
        return [block.spectral for block in self.blocks]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, N, N) float32 -> object patches (B, C, N, N) complex64."""
        check_generator_input(x, self.channels, self.N, "FNOGenerator")
        h = lift(self.lift, x, module_channels_last(self))
        for block in self.blocks:
            h = block(h)
        for refiner in self.refiners:
            h = refiner(h)
        return self.head(h)
