"""Data residual: one NLL/MAE definition with the training loss, zero-padded object
patches, and the residual of the delivered (stitched) object next to the raw patches."""
from __future__ import annotations

import numpy as np
import pytest

from ptycho.geometry.patches import edge_patterns, object_patches


def test_object_patches_zero_outside_the_object():
    obj = (np.arange(36, dtype=np.float64).reshape(6, 6) + 1.0).astype(np.complex64)
    # centre (x=0, y=0) with N=4: rows/cols -2..1, so two rows and two columns outside
    p = object_patches(obj, np.array([[[0.0, 0.0]]]), 4)
    assert p.shape == (1, 1, 4, 4)
    assert np.all(p[0, 0, :2, :] == 0) and np.all(p[0, 0, :, :2] == 0)
    np.testing.assert_array_equal(p[0, 0, 2:, 2:], obj[:2, :2])
    # the far corner: centre (5, 5) -> rows/cols 3..6, row/col 6 outside
    q = object_patches(obj, np.array([[[5.0, 5.0]]]), 4)
    np.testing.assert_array_equal(q[0, 0, :3, :3], obj[3:, 3:])
    assert np.all(q[0, 0, 3, :] == 0) and np.all(q[0, 0, :, 3] == 0)


def test_object_patches_interior_is_exact_and_rounds_half_up():
    rng = np.random.default_rng(0)
    obj = (rng.normal(size=(10, 12)) + 1j * rng.normal(size=(10, 12))).astype(np.complex64)
    # x = 5.5 rounds to 6 (floor(c + 0.5)), y = 4.49 rounds to 4
    p = object_patches(obj, np.array([[[5.5, 4.49]]]), 4)
    np.testing.assert_array_equal(p[0, 0], obj[2:6, 4:8])
    assert p.dtype == obj.dtype


def test_edge_patterns_counts_exactly():
    N = 4
    shape = (8, 10)
    # inside iff N//2 <= c and c - N//2 + N <= size, i.e. 2 <= x <= 8, 2 <= y <= 6
    centres = np.array([[[2.0, 2.0], [8.0, 6.0]],     # both inside (touching the edges)
                        [[1.0, 4.0], [5.0, 7.0]],     # left edge, bottom edge
                        [[9.0, 3.0], [4.0, 1.4]]],    # right edge, y=1.4 rounds to 1: top
                       dtype=np.float64)
    assert edge_patterns(shape, centres, N) == 4
    assert edge_patterns(shape, centres[:1], N) == 0


# --------------------------------------------------------------- one NLL definition (A)
def _scan(seed=0, n=7, C=1, N=16, s=3.0, bad_fraction=0.08):
    """Random patches, a probe, measured amplitudes of another object with Poisson noise,
    and a detector mask whose bad pixels hold huge values."""
    import torch

    from ptycho_torch.core.physics import FarFieldPtychography
    rng = np.random.default_rng(seed)
    shape = (n, C, N, N)
    patches = (rng.normal(1, 0.3, shape) * np.exp(1j * rng.normal(0, 0.5, shape))).astype(np.complex64)
    probe = (rng.normal(size=(N, N)) + 1j * rng.normal(size=(N, N))).astype(np.complex64)
    other = (patches * np.exp(1j * rng.normal(0, 0.3, shape))).astype(np.complex64)
    clean = FarFieldPtychography(probe)(torch.from_numpy(other)).numpy().astype(np.float64)
    meas = (np.sqrt(rng.poisson((s * clean) ** 2)) / s).astype(np.float32)
    bad = rng.random((N, N)) < bad_fraction
    bad[0, 0] = True
    meas[..., bad] = 1e4
    return patches, meas, probe, s, bad


def _whole_scan_losses(patches, meas, probe, s, bad):
    import torch

    from ptycho_torch.core.losses import normalized_amplitude_mae, poisson_nll
    from ptycho_torch.core.physics import FarFieldPtychography
    pred = FarFieldPtychography(probe)(torch.from_numpy(patches)).to(torch.float64)
    obs = torch.from_numpy(meas).to(torch.float64)
    mask = torch.from_numpy(~bad)
    return (float(poisson_nll(pred, obs, s, mask=mask)),
            float(normalized_amplitude_mae(pred, obs, mask=mask)))


def test_data_residual_is_the_training_loss_over_measured_pixels():
    from ptycho_torch.core.residual import data_residual
    patches, meas, probe, s, bad = _scan()
    nll, mae = _whole_scan_losses(patches, meas, probe, s, bad)
    r = data_residual(patches, meas, probe, photon_scale=s, bad_pixels=bad)
    assert r["poisson_nll"] == pytest.approx(nll, rel=1e-12, abs=1e-12)
    assert r["amplitude_mae"] == pytest.approx(mae, rel=1e-12, abs=1e-12)
    assert r["n_patterns"] == 7
    # the values in the bad pixels do not matter
    other = meas.copy()
    other[..., bad] = 0.0
    r0 = data_residual(patches, other, probe, photon_scale=s, bad_pixels=bad)
    assert r0["poisson_nll"] == pytest.approx(r["poisson_nll"], rel=1e-12)
    assert r0["amplitude_mae"] == pytest.approx(r["amplitude_mae"], rel=1e-12)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 1000])
def test_data_residual_does_not_depend_on_the_batch_size(batch_size):
    from ptycho_torch.core.residual import data_residual
    patches, meas, probe, s, bad = _scan(seed=1, n=5, C=2)
    nll, mae = _whole_scan_losses(patches, meas, probe, s, bad)
    r = data_residual(patches, meas, probe, photon_scale=s, bad_pixels=bad, batch_size=batch_size)
    assert r["poisson_nll"] == pytest.approx(nll, rel=1e-12, abs=1e-12)
    assert r["amplitude_mae"] == pytest.approx(mae, rel=1e-12, abs=1e-12)
    assert r["n_patterns"] == 10


def test_data_residual_batch_whose_measured_counts_are_all_zero():
    """A batch of dark patterns (every measured count 0) is summed exactly too."""
    from ptycho_torch.core.residual import data_residual
    patches, meas, probe, s, bad = _scan(seed=2, n=4)
    meas[:2][..., ~bad] = 0.0
    nll, _ = _whole_scan_losses(patches, meas, probe, s, bad)
    r = data_residual(patches, meas, probe, photon_scale=s, bad_pixels=bad, batch_size=2)
    assert np.isfinite(r["poisson_nll"])
    assert r["poisson_nll"] == pytest.approx(nll, rel=1e-12)


def test_data_residual_without_a_mask_is_the_plain_mean():
    from ptycho_torch.core.residual import data_residual
    patches, meas, probe, s, _ = _scan(seed=3, bad_fraction=0.0)
    none = np.zeros(meas.shape[-2:], dtype=bool)
    nll, mae = _whole_scan_losses(patches, meas, probe, s, none)
    r = data_residual(patches, meas, probe, photon_scale=s, batch_size=3)
    assert r["poisson_nll"] == pytest.approx(nll, rel=1e-12)
    assert r["amplitude_mae"] == pytest.approx(mae, rel=1e-12)
    with pytest.raises(ValueError, match=r"^bad_pixels has shape \(3, 3\)"):
        data_residual(patches, meas, probe, bad_pixels=np.zeros((3, 3), bool))


# ------------------------------------------------- delivered object vs raw patches (C)
def _delivered(seed=0, N=16, shape=(40, 44), region=(5, 7, 30, 32), step=3):
    """An object, its patches at scan centres that all fit inside ``region``, and a
    Reconstruction whose recon is the object clipped to ``region`` (a lossless stitch)."""
    from types import SimpleNamespace

    import torch

    from ptycho_torch.core.physics import FarFieldPtychography
    from ptycho.reconstruction import Reconstruction
    rng = np.random.default_rng(seed)
    obj = (rng.normal(1, 0.2, shape) * np.exp(1j * rng.normal(0, 0.4, shape))).astype(np.complex64)
    r0, c0, h, w = region
    xs = np.arange(c0 + N // 2, c0 + w - N // 2 + 1, step, dtype=np.float64)
    ys = np.arange(r0 + N // 2, r0 + h - N // 2 + 1, step, dtype=np.float64)
    centres = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 1, 2)
    patches = object_patches(obj, centres, N)
    probe = (rng.normal(size=(N, N)) + 1j * rng.normal(size=(N, N))).astype(np.complex64)
    amps = FarFieldPtychography(probe)(torch.from_numpy(patches)).numpy()
    noisy = (np.sqrt(rng.poisson((10.0 * amps.astype(np.float64)) ** 2)) / 10.0).astype(np.float32)
    sub = SimpleNamespace(centres=centres, diffraction=noisy)
    rec = Reconstruction(recon=obj[r0:r0 + h, c0:c0 + w].copy(), ground_truth=None,
                         region=region, patches=patches, inference_time_s=0.0,
                         stitch_time_s=0.0, n_patterns=len(centres), infer_batch_size=1,
                         stitch={})
    return rec, sub, probe


def test_lossless_stitch_gives_equal_residuals():
    from ptycho_torch.core.residual import network_residuals
    rec, sub, probe = _delivered()
    bad = np.zeros((16, 16), bool)
    bad[3, 5] = True
    delivered, raw = network_residuals(rec, sub, probe, photon_scale=10.0, bad_pixels=bad)
    for key in ("amplitude_mae", "poisson_nll"):
        assert delivered[key] == pytest.approx(raw[key], rel=1e-6), key
    assert delivered["n_edge_patterns"] == 0 and delivered["n_patterns"] == raw["n_patterns"]
    assert delivered["object_scale"] == pytest.approx(1.0, abs=1e-6)
    assert delivered["object_scale_phase"] == pytest.approx(0.0, abs=1e-6)
    assert "least squares" in delivered["note"] and "zero" in delivered["note"]
    # the region's offset is used: a recon placed one pixel off no longer fits
    shifted = dataclasses_replace(rec, region=(rec.region[0] + 1,) + tuple(rec.region[1:]))
    off, _ = network_residuals(shifted, sub, probe, photon_scale=10.0, bad_pixels=bad)
    assert off["amplitude_mae"] > 3 * raw["amplitude_mae"]


def test_delivered_residual_is_invariant_to_a_constant_factor():
    from ptycho_torch.core.residual import network_residuals
    rec, sub, probe = _delivered(seed=4)
    # a lossy stitch: the delivered object is smoothed, so it differs from the raw patches
    lossy = rec.recon.copy()
    lossy[1:-1] = 0.5 * lossy[1:-1] + 0.25 * (lossy[:-2] + lossy[2:])
    base = dataclasses_replace(rec, recon=lossy)
    d0, raw = network_residuals(base, sub, probe, photon_scale=10.0, bad_pixels=None)
    c = 0.37 - 1.2j
    d1, raw1 = network_residuals(dataclasses_replace(base, recon=(lossy * c).astype(np.complex64)),
                                 sub, probe, photon_scale=10.0, bad_pixels=None)
    assert d0["amplitude_mae"] > 1.5 * raw["amplitude_mae"]  # the smoothing shows
    assert d1["amplitude_mae"] == pytest.approx(d0["amplitude_mae"], rel=1e-5)
    assert d1["poisson_nll"] == pytest.approx(d0["poisson_nll"], rel=1e-5)
    assert d1["object_scale"] == pytest.approx(d0["object_scale"] / abs(c), rel=1e-5)
    assert raw1 == raw


def test_the_scale_ignores_pixels_the_probe_does_not_light():
    from ptycho_torch.core.residual import exit_wave_scale
    rng = np.random.default_rng(11)
    N = 16
    cut = (rng.normal(size=(5, 1, N, N)) + 1j * rng.normal(size=(5, 1, N, N))).astype(np.complex64)
    c = 0.8 - 0.3j
    patches = (c * cut).astype(np.complex64)
    # outside a disc the probe is dark, and there the patches are anything at all
    yy, xx = np.mgrid[:N, :N] - N / 2
    lit = np.hypot(xx, yy) < 4
    patches[..., ~lit] = 50.0 * rng.normal(size=patches[..., ~lit].shape)
    probe = np.where(lit, 1.0 + 0.5j, 0.0).astype(np.complex64)
    assert exit_wave_scale(cut, patches, probe) == pytest.approx(c, abs=1e-5)
    # two modes weigh by their summed intensity; the unweighted fit is led by the dark pixels
    modes = np.stack([probe, 0.5 * probe])
    assert exit_wave_scale(cut, patches, modes) == pytest.approx(c, abs=1e-5)
    unweighted = np.vdot(cut, patches) / np.vdot(cut, cut)
    assert abs(unweighted - c) > 0.1
    # a cut that is zero wherever the probe lights it has no scale to fit
    assert exit_wave_scale(np.where(lit, 0, cut), patches, probe) == 1.0


def test_edge_patterns_are_counted_and_zero_padded_in_the_delivered_residual():
    from ptycho_torch.core.residual import data_residual, network_residuals
    rec, sub, probe = _delivered(seed=5)
    r0, c0, h, w = rec.region
    # a recon two columns narrower: the patterns of the last column(s) reach past its edge
    small = dataclasses_replace(rec, recon=rec.recon[:, :w - 2].copy(),
                                region=(r0, c0, h, w - 2))
    local = sub.centres - np.array([c0, r0], dtype=np.float64)
    expected = edge_patterns(small.recon.shape, local, 16)
    assert expected > 0
    d, _ = network_residuals(small, sub, probe, photon_scale=10.0, bad_pixels=None)
    assert d["n_edge_patterns"] == expected
    assert f"{expected} of {len(local)}" in d["note"]
    cut = object_patches(small.recon, local, 16)
    scale = np.vdot(cut, rec.patches) / np.vdot(cut, cut)
    ref = data_residual((cut * scale).astype(np.complex64), sub.diffraction, probe,
                        photon_scale=10.0)
    assert d["amplitude_mae"] == pytest.approx(ref["amplitude_mae"], rel=1e-6)
    assert d["poisson_nll"] == pytest.approx(ref["poisson_nll"], rel=1e-6)


def dataclasses_replace(rec, **kw):
    import dataclasses
    return dataclasses.replace(rec, **kw)


def test_a_network_reconstruction_of_the_tiny_scan_carries_both(tiny_data, true_patch_model):
    """The stitched true patches (positions stitching) against the raw ones; the border
    patterns' outer pixels are reached by no stitched crop, so their patches are zero
    there."""
    from ptycho.config.config import InferenceConfig
    from ptycho_torch.core.residual import data_residual, network_residuals
    from ptycho_torch.engine.inference import reconstruct_test_object
    _, test = tiny_data
    rec = reconstruct_test_object(true_patch_model(test), test, InferenceConfig())
    sub = test.select(test.object_selection(0))
    d, p = network_residuals(rec, sub, test.probe, photon_scale=test.photon_scale,
                             bad_pixels=test.bad_pixels)
    assert p == data_residual(rec.patches, sub.diffraction, test.probe,
                              photon_scale=test.photon_scale, bad_pixels=test.bad_pixels)
    # the delivered object is the whole stitched canvas (positions stitching, central
    # N/2 crops): a pattern is an edge pattern when its patch holds a pixel no crop covered
    assert rec.canvas.shape == test.ground_truth.shape and rec.canvas_origin == (0, 0)
    N = test.N
    corner = np.floor(sub.centres.reshape(-1, 2) + 0.5).astype(int) - N // 2
    edge = sum(not rec.canvas_covered[max(r, 0):r + N, max(c, 0):c + N].all()
               or r < 0 or c < 0 or r + N > rec.canvas.shape[0] or c + N > rec.canvas.shape[1]
               for c, r in corner)
    assert d["n_edge_patterns"] == edge > 0
    assert np.all(rec.canvas[~rec.canvas_covered] == 0)
    assert d["n_patterns"] == p["n_patterns"] == sub.centres.shape[0]
    # the true patches re-simulate their data to the noise; the delivered object, zero
    # outside the grid region, does worse
    assert p["amplitude_mae"] < 0.02 and d["amplitude_mae"] > p["amplitude_mae"]


@pytest.mark.parametrize("with_gt", [True, False])
def test_recon_npz_holds_the_stitched_object_the_residual_is_taken_on(tiny_data,
                                                                      true_patch_model,
                                                                      tmp_path, with_gt):
    """recon.npz: ``reconstruction`` (the scored region) is the ``stitched`` canvas cut at
    ``region`` shifted by ``stitched_origin``; the residual re-simulates ``stitched``."""
    import dataclasses

    from ptycho.config.config import InferenceConfig
    from ptycho_torch.core.residual import network_residuals
    from ptycho.reconstruction import save_reconstruction
    from ptycho_torch.engine.inference import reconstruct_test_object
    _, test = tiny_data
    data = test if with_gt else dataclasses.replace(test, ground_truth=None,
                                                    ground_truth_all=None)
    rec = reconstruct_test_object(true_patch_model(test), data, InferenceConfig())
    path = save_reconstruction(tmp_path / "recon.npz", rec)
    with np.load(path, allow_pickle=False) as z:
        r0, c0, h, w = z["region"]
        o_r, o_c = z["stitched_origin"]
        np.testing.assert_array_equal(z["reconstruction"],
                                      z["stitched"][r0 - o_r:r0 - o_r + h, c0 - o_c:c0 - o_c + w])
        assert z["stitched_covered"].dtype == bool and z["stitched_covered"].any()
        again = dataclasses.replace(rec, canvas=z["stitched"], canvas_covered=z["stitched_covered"],
                                    canvas_origin=tuple(z["stitched_origin"]))
    sub = data.select(data.object_selection(0))
    kw = dict(photon_scale=data.photon_scale, bad_pixels=data.bad_pixels)
    assert network_residuals(again, sub, data.probe, **kw)[0] == \
        network_residuals(rec, sub, data.probe, **kw)[0]


# --------------------------------------------------------------- sub-pixel positions
def test_subpixel_cuts_are_the_rounded_cut_at_integer_centres():
    from ptycho.geometry.patches import subpixel_cuts
    rng = np.random.default_rng(1)
    obj = (rng.normal(size=(20, 22)) + 1j * rng.normal(size=(20, 22))).astype(np.complex64)
    centres = np.array([[[8.0, 9.0]], [[1.0, 3.0]], [[15.0, 12.0]]])
    cut, shifts = subpixel_cuts(obj, centres, 8)
    np.testing.assert_array_equal(cut, object_patches(obj, centres, 8))
    assert shifts.shape == (3, 1, 2) and not shifts.any()
    # x = 8.75 -> corner floor(4.75) = 4, shift 0.75; y = 9.25 -> corner 5, shift 0.25
    cut, shifts = subpixel_cuts(obj, np.array([[[8.75, 9.25]]]), 8)
    np.testing.assert_array_equal(cut[0, 0], obj[5:13, 4:12])
    np.testing.assert_allclose(shifts[0, 0], [0.75, 0.25])


def test_true_object_at_subpixel_positions_scores_the_noise_floor():
    """A scan simulated at fractional positions (ptycho.datagen, the probe moved by the
    fraction): object_residual of the true object is the Poisson noise alone; the rounded
    cut misplaces every pattern by up to half a pixel and scores far worse."""
    from ptycho.datagen.spiral_scan import simulate_at_positions
    from ptycho.probes import make_probe
    from ptycho_torch.core.residual import data_residual, object_residual
    N = 32
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:96, :96]
    obj = (np.exp(1j * 0.8 * np.sin(xx / 3.0) * np.cos(yy / 4.0))
           * (0.7 + 0.3 * (np.sin(xx / 2.0 + yy / 5.0) > 0))).astype(np.complex64)
    pos = 30.0 + rng.uniform(0, 36, size=(60, 2))
    scan = simulate_at_positions(obj, N, pos, make_probe(N), 1e10, rng)
    amps = (np.sqrt(scan.counts.astype(np.float64)) / scan.photon_scale).astype(np.float32)
    centres, probe = pos[:, None, :], scan.probe / scan.photon_scale
    exact = object_residual(obj, centres, amps[:, None], probe, photon_scale=scan.photon_scale)
    rounded = data_residual(object_patches(obj, centres, N), amps[:, None], probe,
                            photon_scale=scan.photon_scale)
    integer = simulate_at_positions(obj, N, np.round(pos), make_probe(N), 1e10,
                                    np.random.default_rng(5))
    floor = data_residual(object_patches(obj, np.round(pos)[:, None, :], N),
                          (np.sqrt(integer.counts.astype(np.float64))
                           / integer.photon_scale).astype(np.float32)[:, None],
                          integer.probe / integer.photon_scale, photon_scale=integer.photon_scale)
    assert exact["amplitude_mae"] < 1.5 * floor["amplitude_mae"]   # the noise, as on a grid
    assert rounded["amplitude_mae"] > 10 * exact["amplitude_mae"]


def test_probe_shifts_must_match_the_patterns():
    from ptycho_torch.core.residual import data_residual
    p = np.ones((3, 1, 8, 8), np.complex64)
    with pytest.raises(ValueError, match=r"^probe_shifts have shape \(3, 2\) \(expected "
                                         r"\(3, 1, 2\), one \(fx, fy\) per pattern\)$"):
        data_residual(p, np.ones((3, 1, 8, 8), np.float32), np.ones((8, 8), np.complex64),
                      probe_shifts=np.zeros((3, 2)))
