"""Generators: networks mapping diffraction amplitudes to complex object patches.

``build_generator(model_config)`` -> a :class:`Generator`: (B, C, N, N) float32 ->
(B, C, N, N) complex64, C = gridsize**2, with ``set_initial_amplitude``. ``GENERATORS``
maps ``"cnn"``, ``"fno"``, ``"hybrid"`` to the classes. neuraloperator is imported only
when a spectral generator is built.
"""
from ptycho_torch.generators.layers import Generator
from ptycho_torch.generators.registry import GENERATORS, build_generator, count_parameters

__all__ = ["GENERATORS", "Generator", "build_generator", "count_parameters"]
