"""Explicit architecture name -> generator class map.

``build_generator(model_config)`` builds the generator named by
``model_config.architecture`` from the config's hyperparameters. It accepts
``ptycho.config.ModelConfig``, a plain mapping of its fields (validated by constructing
the ModelConfig), or any object with the same attributes (e.g. ``SimpleNamespace``, not
validated beyond the architecture name). ``GENERATORS``' keys equal
``ptycho.config.choices.ARCHITECTURES`` (tested).

Importing this module does not import neuraloperator; it is imported when an FNO or
Hybrid generator is built.
"""
from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from ptycho.config.config import ModelConfig
from ptycho_torch.generators.cnn import CNNGenerator
from ptycho_torch.generators.fno import FNOGenerator
from ptycho_torch.generators.hybrid import HybridGenerator
from ptycho_torch.generators.layers import Generator

GENERATORS: dict[str, type[Generator]] = {
    "cnn": CNNGenerator,
    "fno": FNOGenerator,
    "hybrid": HybridGenerator,
}


def build_generator(model_config) -> Generator:
    """Build the generator for ``model_config.architecture`` (see the module docstring).

    Returns a :class:`~ptycho_torch.generators.layers.Generator` mapping (B, C, N, N)
    float32 -> (B, C, N, N) complex64, with C = gridsize**2. Raises ValueError for an
    unknown architecture name.
    """
    if isinstance(model_config, Mapping):

        model_config = ModelConfig.from_dict(dict(model_config))
    name = getattr(model_config, "architecture", None)
    if name not in GENERATORS:
        allowed = ", ".join(repr(k) for k in GENERATORS)
        raise ValueError(f"unknown architecture {name!r} (choose one of: {allowed})")
    return GENERATORS[name](model_config)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of real scalars in the parameters (a complex parameter counts twice).

    Same convention as ``neuralop.utils.count_model_params``.
    """
    return sum(p.numel() * (2 if p.is_complex() else 1)
               for p in module.parameters() if p.requires_grad or not trainable_only)
