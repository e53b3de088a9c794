"""The two-half FRC (ptycho/two_half_frc.py): equal halves reach Nyquist, noisy
halves fall below it, and too small a scan gives none."""
import numpy as np
import pytest

from ptycho.config.config import InferenceConfig
from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import fermat_spiral
from ptycho.geometry.patches import object_patches
from ptycho.two_half_frc import two_half_frc

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


def test_a_phase_offset_between_the_halves_changes_nothing():
    """The odd half turned by a constant phase is turned back: vdot(b, a) is the phase of
    the even half relative to the odd one (it was applied with the wrong sign, doubling the
    offset: 1.5 rad read as a phase FRC50 of 0.02)."""
    _, centres, patches = _scan()
    rng = np.random.default_rng(2)
    noisy = (patches + 0.2 * (rng.normal(size=patches.shape)
                              + 1j * rng.normal(size=patches.shape))).astype(np.complex64)
    base = two_half_frc(noisy, centres, InferenceConfig())
    for theta in (1.5, 2.5, -3.0):
        turned = noisy.copy()
        turned[1::2] *= np.exp(1j * theta).astype(np.complex64)
        out = two_half_frc(turned, centres, InferenceConfig())
        for key in ("frc50", "frc_halfbit"):
            for a, b in zip(out[key], base[key]):
                assert (a is None and b is None) or a == pytest.approx(b, abs=1e-4), (key, theta)
        assert out["frc50_censored"] == base["frc50_censored"]


def test_halves_that_never_decorrelate_are_censored():
    _, centres, patches = _scan()
    out = two_half_frc(patches, centres, InferenceConfig())
    for key in ("frc50", "frc_halfbit"):
        for value, label in zip(out[key], out[f"{key}_censored"]):
            assert (value is None) == (label == ">= 0.5")
            assert value is None or 0 < value < 0.5
    assert "trained on both halves" in out["note"] and "normalisation" in out["note"]
