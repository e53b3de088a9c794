"""ptycho_torch.ptychi.start: the start a network gives an iterative engine.

Identities on the tiny simulated scan (no Pty-chi needed): the true object's patches give
back the true object (up to the undetermined constant phase) at the measured brightness,
any brightness factor of the network is undone by the Parseval scale, and the patches at
positions outside the given scan are never used (the held-out rule depends on it).
"""
import numpy as np
import pytest

from ptycho.stitching import StitchOptions
from ptycho.geometry import patches as object_patches_mod
from ptycho_torch.ptychi import scan as ptychi_scan
from ptycho_torch.ptychi import start as rf

WHOLE = StitchOptions(mode="positions", crop=None)


def _true_patches(test, shift: int = 0):
    """The true object's patches (n, 1, N, N) at test object 0's centres (``shift``: cut
    every patch that many pixels to the right)."""
    sub = test.select(test.object_selection(0))
    obj = np.roll(test.ground_truth, -shift, axis=1)
    return object_patches_mod.object_patches(obj, sub.centres, test.N), sub.centres, sub.pattern_ids()


def _covered(scan, N, crop=None):
    k = N if crop is None else crop
    mask = np.zeros(scan.object_shape, bool)
    for x, y in np.floor(scan.positions_xy + 0.5).astype(int):
        mask[y - k // 2:y - k // 2 + k, x - k // 2:x - k // 2 + k] = True
    return mask


def test_true_patches_give_the_true_object_at_the_measured_brightness(tiny_data):
    _, test = tiny_data
    scan = ptychi_scan.scan_for_ptychi(test)
    patches, centres, ids = _true_patches(test)
    start = rf.start_from_patches(patches * np.exp(1j * 0.7), centres, scan, WHOLE,
                                  pattern_ids=ids)
    gt = test.ground_truth
    cov = _covered(scan, test.N)
    ratio = start[cov] / gt[cov]
    # amplitude: the true one (noise-free counts: the Parseval scale is 1); phase: the true
    # one up to one constant (the 0.7 rad offset and the mean phase are removed)
    np.testing.assert_allclose(np.abs(ratio), 1.0, atol=2e-3)
    assert np.std(np.angle(ratio * np.conj(ratio.mean()))) < 1e-4
    assert abs(np.angle(np.sum(start[cov]))) < 1e-4                 # mean phase removed
    # the identity is not vacuous: patches cut one pixel off break it
    wrong, _, _ = _true_patches(test, shift=1)
    bad = rf.start_from_patches(wrong, centres, scan, WHOLE, pattern_ids=ids)
    assert np.abs(np.abs(bad[cov] / gt[cov]) - 1).max() > 0.05


def test_any_network_brightness_is_scaled_to_the_counts(tiny_data):
    _, test = tiny_data
    scan = ptychi_scan.scan_for_ptychi(test)
    patches, centres, ids = _true_patches(test)
    ref = rf.start_from_patches(patches, centres, scan, WHOLE, pattern_ids=ids)
    dim = rf.start_from_patches(0.3 * patches, centres, scan, WHOLE, pattern_ids=ids)
    np.testing.assert_allclose(dim, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())
    total = rf.predicted_total_counts(ref, scan)
    assert total == pytest.approx(float(scan.patterns.sum(dtype=np.float64)), rel=1e-5)


def test_patches_off_the_scan_are_not_used(tiny_data):
    _, test = tiny_data
    scan = ptychi_scan.scan_for_ptychi(test)
    patches, centres, ids = _true_patches(test)
    keep = np.arange(0, scan.patterns.shape[0], 2)
    held = np.setdiff1d(np.arange(scan.patterns.shape[0]), keep)
    poisoned = patches.copy()
    poisoned[held] = np.nan            # gridsize 1: pattern i is scan position i
    kept_scan = ptychi_scan.subset_scan(scan, keep)
    start = rf.start_from_patches(poisoned, centres, kept_scan, WHOLE, pattern_ids=ids)
    assert np.all(np.isfinite(start))
    clean = rf.start_from_patches(patches[keep], centres[keep], kept_scan, WHOLE,
                                  pattern_ids=ids[keep])
    np.testing.assert_array_equal(start, clean)
    with pytest.raises(ValueError, match=r"^no predicted patch is one of the scan's patterns$"):
        rf.start_from_patches(patches, centres, scan, WHOLE, pattern_ids=ids + 10 ** 6)
    with pytest.raises(ValueError, match=r"^pattern_ids hold 1 ids for \d+ patches"):
        rf.start_from_patches(patches, centres, scan, WHOLE, pattern_ids=ids[:1])


def test_tiles_stitching_starts_from_positions_and_crop_is_kept(tiny_data):
    _, test = tiny_data
    scan = ptychi_scan.scan_for_ptychi(test)
    assert rf.start_options(StitchOptions(mode="tiles")) == StitchOptions(mode="positions")
    crop = StitchOptions(mode="positions", crop=test.N // 2, align_phase=True)
    assert rf.start_options(crop) is crop
    patches, centres, ids = _true_patches(test)
    start = rf.start_from_patches(patches, centres, scan, crop, pattern_ids=ids)
    cov = _covered(scan, test.N, crop=test.N // 2)
    np.testing.assert_allclose(np.abs(start[cov] / test.ground_truth[cov]), 1.0, atol=0.05)
    # the rim no central crop reaches: flat at the Parseval amplitude (times the one scale
    # factor, close to 1 here), phase 0
    rim = start[~cov]
    assert rim.size > 0
    np.testing.assert_allclose(rim, rim[0])
    assert rim[0].real == pytest.approx(scan.amplitude_guess, rel=0.05) and rim[0].imag == 0


def test_an_empty_or_broken_network_object_is_refused(tiny_data):
    _, test = tiny_data
    scan = ptychi_scan.scan_for_ptychi(test)
    canvas = np.zeros(scan.object_shape, np.complex64)
    with pytest.raises(ValueError, match=r"^the network reconstruction is zero under the probe"):
        rf.initial_object(canvas, np.ones(scan.object_shape, bool), scan)
    canvas[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"^the network reconstruction is empty or not finite"):
        rf.initial_object(canvas, np.ones(scan.object_shape, bool), scan)
    with pytest.raises(ValueError, match=r"^network canvas \(3, 3\)"):
        rf.initial_object(np.ones((3, 3)), np.ones((3, 3), bool), scan)


def test_two_patterns_closer_than_half_a_pixel_stay_two(tiny_data):
    """Defect 5.1: patterns are matched by their index, never by the rounded centre. Move
    pattern 1 to 0.3 px from pattern 0: both stay in the Pty-chi scan, and a subset
    without pattern 1 does not take its (poisoned) patch."""
    import dataclasses
    _, test = tiny_data
    sub = test.select(test.object_selection(0))
    nominal = sub.coords_nominal.copy()
    c0 = sub.centres[0, 0]
    nominal[1, 0, 0] = c0 + np.float32(0.3) - sub.coords_offsets[1, 0, 0]
    close = dataclasses.replace(sub, coords_nominal=nominal)
    assert np.all(np.floor(close.centres[1, 0] + 0.5) == np.floor(close.centres[0, 0] + 0.5))
    scan = ptychi_scan.scan_for_ptychi(close)
    assert scan.patterns.shape[0] == sub.n
    np.testing.assert_array_equal(scan.pattern_ids, np.arange(sub.n))
    np.testing.assert_allclose(scan.positions_xy[1], close.centres[1, 0], atol=1e-6)
    patches = object_patches_mod.object_patches(test.ground_truth, close.centres, test.N)
    poisoned = patches.copy()
    poisoned[1] = np.nan
    keep = np.setdiff1d(np.arange(sub.n), [1])
    start = rf.start_from_patches(poisoned, close.centres, ptychi_scan.subset_scan(scan, keep), WHOLE,
                                  pattern_ids=close.pattern_ids())
    assert np.all(np.isfinite(start))


def test_gridsize_2_shares_each_pattern_once(tiny_data_g2):
    """At gridsize 2 a pattern sits in up to 4 groups; the Pty-chi scan has it once."""
    _, test = tiny_data_g2
    sub = test.select(test.object_selection(0))
    ids = sub.pattern_ids()
    assert ids.shape == (sub.n, 4) and test.pattern_index is not None
    n_side = int(test.metadata["n_side"])
    scan = ptychi_scan.scan_for_ptychi(test)
    assert scan.patterns.shape[0] == len(np.unique(ids)) == n_side * n_side
    # the legacy rule (a file without pattern_index) finds the same sharing
    import dataclasses
    legacy = dataclasses.replace(sub, pattern_index=None)
    assert len(np.unique(legacy.pattern_ids())) == n_side * n_side
