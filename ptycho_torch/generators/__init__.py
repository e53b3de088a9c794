"""Generators: networks mapping diffraction amplitudes to complex object patches.

``build_generator(model_config)`` -> ``nn.Module``: (B, C, N, N) float32 -> (B, C, N, N)
complex64, C = gridsize**2. ``GENERATORS`` maps ``"cnn"``, ``"fno"``, ``"hybrid"`` to the
classes. neuraloperator is imported only when a spectral generator is built.
"""
from ptycho_torch.generators.registry import GENERATORS, build_generator, count_parameters

__all__ = ["GENERATORS", "build_generator", "count_parameters"]
