"""The two-half FRC (ptycho_torch/two_half_frc.py): equal halves reach Nyquist, noisy
halves fall below it, and too small a scan gives none."""
import numpy as np

from ptycho.config.config import InferenceConfig
from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import fermat_spiral
from ptycho_torch.object_patches import object_patches
from ptycho_torch.two_half_frc import two_half_frc

N = 32


def _scan(n=300):
    obj = make_object(128, 60, np.random.default_rng(0)).astype(np.complex64)
    centres = (fermat_spiral(n, 2.5) + 64.0)[:, None, :]
    return obj, centres, object_patches(obj, centres, N).astype(np.complex64)


def test_identical_halves_correlate_to_nyquist():
    _, centres, patches = _scan()
    out = two_half_frc(patches, centres, InferenceConfig())
    assert min(out["frc50"]) > 0.45      # sub-pixel shifts blur the finest rings a little
    assert out["n_patterns"] == [150, 150] and min(out["region"]) >= 16


def test_independent_noise_lowers_it():
    _, centres, patches = _scan()
    rng = np.random.default_rng(1)
    noisy = patches + 0.5 * (rng.normal(size=patches.shape) + 1j * rng.normal(size=patches.shape))
    out = two_half_frc(noisy.astype(np.complex64), centres, InferenceConfig())
    assert 0 < max(out["frc50"]) < 0.4


def test_too_few_patterns_give_none():
    _, centres, patches = _scan(3)
    assert two_half_frc(patches, centres, InferenceConfig()) is None
