"""Neighbour agreement (ptycho/neighbour_agreement.py): patches cut from one object agree
whatever constant phase each carries, a patch that leans its own way does not, pairs are
the overlapping whole-pixel neighbours, and a sub-pixel scan gives none."""
import numpy as np
import pytest

from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import fermat_spiral
from ptycho.geometry.patches import object_patches
from ptycho.neighbour_agreement import neighbour_disagreement

N, CROP, STEP, SIDE = 32, 16, 5, 9


def _raster():
    obj = make_object(96, 40, np.random.default_rng(0)).astype(np.complex128)
    grid = 24 + STEP * np.arange(SIDE, dtype=np.float64)
    centres = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)   # (x, y)
    return obj, centres, object_patches(obj, centres, N)


def test_patches_of_one_object_agree_whatever_their_constant_phases():
    _, centres, patches = _raster()
    out = neighbour_disagreement(patches, centres, CROP)
    # the four axis neighbours only: 5 px apart the crops overlap by 11/16, 10 px or a
    # diagonal step by less than half
    assert len(out["pairs"]) == 2 * SIDE * (SIDE - 1)
    steps = np.abs(centres[out["pairs"][:, 1]] - centres[out["pairs"][:, 0]]).sum(axis=1)
    assert np.all(steps == STEP)
    assert out["median"] == pytest.approx(0, abs=1e-12)
    turned = patches * np.exp(1j * np.random.default_rng(1).uniform(-3, 3, len(patches)))[:, None, None]
    assert neighbour_disagreement(turned, centres, CROP)["median"] == pytest.approx(0, abs=1e-12)


def test_a_phase_ramp_on_one_patch_is_measured_as_its_weighted_rms():
    obj, centres, patches = _raster()
    j = SIDE + 1                                          # a patch off the border
    ramp = 0.02 * (np.arange(N) - N / 2)[None, :] * np.ones((N, 1))
    leaned = patches.copy()
    leaned[j] = leaned[j] * np.exp(1j * ramp)
    out = neighbour_disagreement(leaned, centres, CROP)
    # its right-hand neighbour, in object pixels: the overlap of the two central crops
    k = j + 1
    (i_pair,) = np.flatnonzero((out["pairs"][:, 0] == j) & (out["pairs"][:, 1] == k))
    lo = (N - CROP) // 2
    a = leaned[j][lo:lo + CROP, lo + STEP:lo + CROP]
    b = patches[k][lo:lo + CROP, lo:lo + CROP - STEP]
    r = ramp[lo:lo + CROP, lo + STEP:lo + CROP]
    np.testing.assert_allclose(a * np.exp(-1j * r), b, atol=1e-12)   # the same object pixels
    w = np.abs(a) * np.abs(b)
    expected = np.sqrt(np.sum(w * (r - np.sum(w * r) / w.sum()) ** 2) / w.sum())
    assert out["values"][i_pair] == pytest.approx(expected, rel=1e-3)
    untouched = [n for n, (p, q) in enumerate(out["pairs"]) if j not in (p, q)]
    assert np.max(out["values"][untouched]) < 1e-12


def test_sub_pixel_offsets_give_no_pair_and_bad_input_is_refused():
    obj = make_object(96, 40, np.random.default_rng(0)).astype(np.complex128)
    centres = fermat_spiral(50, 2.5) + 48.0
    out = neighbour_disagreement(object_patches(obj, centres, N), centres, CROP)
    assert out["median"] is None and len(out["pairs"]) == 0
    _, centres, patches = _raster()
    with pytest.raises(ValueError, match=r"crop 40: allowed 1 \.\. 32 \(the patch size\)"):
        neighbour_disagreement(patches, centres, 40)
    with pytest.raises(ValueError, match="expected"):
        neighbour_disagreement(patches[:3], centres, CROP)
