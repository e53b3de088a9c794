"""CNN generator: the PtychoPINN-style convolutional encoder-decoder baseline.

Filters ``f = n_filters_scale * (16, 32, 64)`` (32, 64, 128 at the default scale 2)::

    x (B, C, N, N) float32
      encoder, for each f_i:  Conv3x3 -> ReLU -> Conv3x3 -> ReLU [-> CBAM] -> MaxPool 2x2
                                                                               N -> N/8
      decoder, for f_i reversed:  Conv3x3 -> ReLU -> Conv3x3 -> ReLU -> nearest 2x up   -> N
      -> ComplexOutputHead -> (B, C, N, N) complex64

No skip connections (as the reference); zero ("same") padding; nearest-neighbour
upsampling as Keras ``UpSampling2D`` (implemented with ``expand``, deterministic on CUDA).
``encoder_attention="cbam"`` puts a :class:`~ptycho_torch.generators.attention.CBAM` block
between each level's second ReLU and its max-pool (where upstream PtychoPINN's
``cbam_encoder`` puts it); ``"none"`` (default) adds nothing. Convolutions, the CBAM
spatial convs included, are He-initialised (``layers.init_conv_weights``). The untrained
gates (about 0.5 each, two per level) make the decoder's input ~30x smaller than without
them (RMS 0.014 vs 0.48 at the defaults, N 64, uniform input); the head's bias still
starts the object at ``0.5 * exp(0j)``, with smaller variations.
"""
from __future__ import annotations

import torch
from torch import nn

from ptycho_torch.generators.attention import ENCODER_ATTENTIONS
from ptycho_torch.generators.layers import (
    ComplexOutputHead,
    Generator,
    UpsampleNearest2x,
    check_generator_input,
    conv3x3,
    init_conv_weights,
)

BASE_FILTERS = (16, 32, 64)


def _conv_pair(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [conv3x3(in_ch, out_ch), nn.ReLU(), conv3x3(out_ch, out_ch), nn.ReLU()]


class CNNGenerator(Generator):
    """Encoder-decoder baseline; see the module docstring.

    Attributes: ``filters`` (per level), ``encoder`` and ``decoder`` (``nn.Sequential``),
    ``head`` (:class:`ComplexOutputHead`). A config without ``encoder_attention`` (e.g. a
    ``SimpleNamespace`` of an older ModelConfig) builds the plain encoder.
    """

    def __init__(self, model_config) -> None:
        super().__init__()
        c = int(model_config.gridsize) ** 2
        scale = int(model_config.n_filters_scale)
        self.channels, self.N = c, int(model_config.N)
        self.filters = [scale * f for f in BASE_FILTERS]
        attention = ENCODER_ATTENTIONS[getattr(model_config, "encoder_attention", "none")]
        enc: list[nn.Module] = []
        in_ch = c
        for f in self.filters:
            enc += _conv_pair(in_ch, f) + attention(f) + [nn.MaxPool2d(2)]
            in_ch = f
        dec: list[nn.Module] = []
        for f in reversed(self.filters):
            dec += _conv_pair(in_ch, f) + [UpsampleNearest2x()]
            in_ch = f
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
        init_conv_weights(self)  # before the head, which keeps its own init
        self.head = ComplexOutputHead(in_ch, c, model_config.generator_output_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, N, N) float32 -> object patches (B, C, N, N) complex64."""
        check_generator_input(x, self.channels, self.N, "CNNGenerator")
        return self.head(self.decoder(self.encoder(x)))
