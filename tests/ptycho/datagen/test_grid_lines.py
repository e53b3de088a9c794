"""Tests for ptycho.datagen.grid_lines (small objects; never the full default set)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ptycho import forward, probes
from ptycho.datagen import grid_lines as gl
from ptycho.geometry.raster import (
    group_coords, group_indices, n_groups, n_scan_side, scan_top_left,
)
from ptycho.datagen.grid_lines import (
    FORMAT_VERSION,
    GridLinesSpec,
    extract_patches,
    make_object,
    simulate_split,
)
from ptycho.forward import diffraction_amplitude, simulation_scale
from ptycho.probes import make_probe
from ptycho.datagen.grid_lines_files import simulate_grid_lines

SMALL = dict(object_size=96, N=32, n_lines=40, train_stride=8, test_stride=16,
             n_train_objects=2, n_test_objects=2, probe_defocus=3.0)


def small_spec(**kw) -> GridLinesSpec:
    return GridLinesSpec(**{**SMALL, **kw})


def random_complex(rng, shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


# ---------------------------------------------------------------- scan geometry

@pytest.mark.parametrize("N,stride,expected", [(64, 4, 83), (64, 10, 33),
                                               (128, 4, 67), (128, 10, 27)])
def test_pattern_counts_match_reference(N, stride, expected):
    assert n_scan_side(392, N, stride) == expected
    assert n_groups(392, N, stride) == expected ** 2
    assert n_groups(392, N, stride, gridsize=2) == (expected - 1) ** 2
    tl = scan_top_left(392, N, stride)
    assert tl.shape == (expected ** 2, 2)
    # last patch still fits inside the object
    assert tl.max() + N <= 392
    assert tl.max() == (expected - 1) * stride


def test_scan_top_left_row_major():
    tl = scan_top_left(40, 16, 8)          # n_side = 4
    assert tl[:5].tolist() == [[0, 0], [0, 8], [0, 16], [0, 24], [8, 0]]


def test_extract_patches_equals_direct_slicing():
    rng = np.random.default_rng(0)
    obj = random_complex(rng, (96, 96))
    N, stride = 16, 5
    patches = extract_patches(obj, N, stride)
    tl = scan_top_left(96, N, stride)
    assert patches.shape == (17 * 17, N, N)
    assert patches.dtype == np.complex64
    for i in (0, 7, 17, 150, len(tl) - 1):
        r, c = tl[i]
        np.testing.assert_array_equal(patches[i], obj[r:r + N, c:c + N])


def test_group_indices_gridsize2_explicit():
    g = group_indices(3, 2)
    assert g.tolist() == [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]]
    assert group_indices(3, 1).tolist() == [[i] for i in range(9)]


def test_group_coords_gridsize2_absolute_centres_and_nominal():
    S, N, stride = 96, 16, 8
    n_side = n_scan_side(S, N, stride)
    tl = scan_top_left(S, N, stride)
    gidx = group_indices(n_side, 2)
    offsets, nominal = group_coords(tl, gidx, N)
    assert offsets.shape == nominal.shape == (len(gidx), 4, 2)
    assert offsets.dtype == nominal.dtype == np.float32
    centres_xy = np.stack([tl[:, 1] + N // 2, tl[:, 0] + N // 2], axis=-1)
    np.testing.assert_array_equal(offsets + nominal, centres_xy[gidx])
    # offsets identical over channels; nominal are +-stride/2 in (x, y) order
    np.testing.assert_array_equal(offsets, np.broadcast_to(offsets[:, :1], offsets.shape))
    h = stride / 2
    expected = np.array([[-h, -h], [h, -h], [-h, h], [h, h]], np.float32)  # c = di*2+dj
    np.testing.assert_array_equal(nominal, np.broadcast_to(expected, nominal.shape))


def test_group_coords_gridsize1_nominal_zero():
    tl = scan_top_left(64, 32, 16)
    offsets, nominal = group_coords(tl, group_indices(3, 1), 32)
    assert not nominal.any()
    assert offsets[5, 0].tolist() == [tl[5, 1] + 16, tl[5, 0] + 16]


# ---------------------------------------------------------------- physics

def test_diffraction_parseval_and_dc_centre():
    rng = np.random.default_rng(1)
    patches = random_complex(rng, (5, 3, 16, 16))
    probe = make_probe(16, 0.25, 1.0)
    amp = diffraction_amplitude(patches, probe)
    assert amp.shape == patches.shape and amp.dtype == np.float32
    lhs = (amp.astype(np.float64) ** 2).sum(axis=(-2, -1))
    rhs = (np.abs(patches * probe).astype(np.float64) ** 2).sum(axis=(-2, -1))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5)
    # flat wave: all energy at the centre pixel (N//2, N//2), value N (unitary FFT)
    flat = diffraction_amplitude(np.ones((1, 16, 16), np.complex64), np.ones((16, 16)))
    assert flat[0, 8, 8] == pytest.approx(16.0, rel=1e-6)
    assert flat[0].sum() == pytest.approx(16.0, rel=1e-5)


def test_diffraction_probe_modes_sum_incoherently():
    rng = np.random.default_rng(2)
    patches = random_complex(rng, (4, 16, 16))
    modes = random_complex(rng, (2, 16, 16))
    amp = diffraction_amplitude(patches, modes)
    a0 = diffraction_amplitude(patches, modes[0])
    a1 = diffraction_amplitude(patches, modes[1])
    np.testing.assert_allclose(amp ** 2, a0 ** 2 + a1 ** 2, rtol=1e-5, atol=1e-6)


def test_diffraction_matches_numpy_reference_formula():
    rng = np.random.default_rng(3)
    patches = random_complex(rng, (3, 32, 32))
    probe = make_probe(32)
    ref = np.fft.fftshift(np.abs(np.fft.fft2(patches.astype(np.complex128) * probe,
                                             norm="ortho")), axes=(-2, -1))
    np.testing.assert_allclose(diffraction_amplitude(patches, probe), ref, rtol=1e-4,
                               atol=1e-5)


def test_scale_gives_nphotons_and_scan_sum_agrees():
    rng = np.random.default_rng(4)
    objs = [make_object(96, 40, rng) for _ in range(2)]
    probe = make_probe(32, 0.1875, 3.0)
    patches = [extract_patches(o, 32, 8) for o in objs]
    s = simulation_scale(patches, probe, 1e6)
    counts = (s * diffraction_amplitude(np.concatenate(patches), probe).astype(np.float64)) ** 2
    assert counts.sum(axis=(-2, -1)).mean() == pytest.approx(1e6, rel=1e-5)
    # generator input and the private windowed sum give the same scale
    assert simulation_scale((p for p in patches), probe, 1e6) == pytest.approx(s, rel=1e-12)
    sums = [gl._scan_intensity_sum(o, probe, 32, 8) for o in objs]
    s2 = np.sqrt(1e6 / (sum(t for t, _ in sums) / sum(c for _, c in sums)))
    assert s2 == pytest.approx(s, rel=1e-6)


def test_simulate_split_noise_free_limit_and_counts():
    spec = small_spec(nphotons=1e14)
    rng = np.random.default_rng(5)
    objs = [make_object(96, 40, rng) for _ in range(2)]
    probe = make_probe(32, 0.1875, 3.0)
    s = simulation_scale([extract_patches(o, 32, 8) for o in objs], probe, spec.nphotons)
    out = simulate_split(spec, objs, 8, s, rng)
    clean = np.concatenate([diffraction_amplitude(extract_patches(o, 32, 8), probe)
                            for o in objs])[..., None]
    np.testing.assert_allclose(out["diffraction"], clean, rtol=2e-3,
                               atol=2e-3 * clean.max())
    # few photons: stored values are sqrt(integer counts)/s, mean counts ~ nphotons
    spec_lo = small_spec(nphotons=1e4)
    s_lo = simulation_scale([extract_patches(o, 32, 8) for o in objs], probe, 1e4)
    lo = simulate_split(spec_lo, objs, 8, s_lo, np.random.default_rng(6))
    counts = (lo["diffraction"].astype(np.float64) * s_lo) ** 2
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3 * counts.max())
    assert counts.sum(axis=(1, 2, 3)).mean() == pytest.approx(1e4, rel=0.01)


def test_simulate_split_shapes_labels_gridsize2():
    spec = small_spec(gridsize=2)
    rng = np.random.default_rng(7)
    objs = [make_object(96, 40, rng) for _ in range(2)]
    probe = make_probe(32, 0.1875, 3.0)
    out = simulate_split(spec, objs, 8, 10.0, rng)
    n_side = n_scan_side(96, 32, 8)                     # 9
    n = 2 * (n_side - 1) ** 2
    assert out["diffraction"].shape == (n, 32, 32, 4)
    assert out["diffraction"].dtype == np.float32
    assert out["Y_I"].shape == out["Y_phi"].shape == (n, 32, 32, 4)
    assert out["coords_nominal"].shape == out["coords_offsets"].shape == (n, 1, 2, 4)
    assert out["probeGuess"].shape == (32, 32) and out["probeGuess"].dtype == np.complex64
    assert out["object_index"].dtype == np.int32
    assert out["object_index"].tolist() == [0] * (n // 2) + [1] * (n // 2)
    # pattern_index: group k, channel c is scan position group_indices[k, c] of its object,
    # numbered after object 0's n_side**2 positions for object 1
    gidx = group_indices(n_side, 2)
    np.testing.assert_array_equal(out["pattern_index"][: n // 2], gidx)
    np.testing.assert_array_equal(out["pattern_index"][n // 2:], gidx + n_side * n_side)
    # group 1 of object 1, channel 3 is patch (0+1)*n_side + (1+1) of object 1
    patch = extract_patches(objs[1], 32, 8)[1 * n_side + 2]
    k = n // 2 + 1
    np.testing.assert_allclose(out["Y_phi"][k, ..., 3], np.angle(patch), atol=1e-6)
    np.testing.assert_allclose(out["Y_I"][k, ..., 3] * out["norm_Y_I"],
                               np.abs(patch * probe), rtol=1e-5)
    # norm: mean over patches of per-patch max of Y_I is 1 (use channel 0 of a g=1 run)
    g1 = simulate_split(small_spec(), objs, 8, 10.0, rng)
    assert g1["Y_I"].reshape(len(g1["Y_I"]), -1).max(axis=1).mean() == pytest.approx(1, 1e-5)
    # absolute centre of channel 3 of group k
    tl = scan_top_left(96, 32, 8)[1 * n_side + 2]
    centre = out["coords_offsets"][k, 0, :, 3] + out["coords_nominal"][k, 0, :, 3]
    assert centre.tolist() == [tl[1] + 16, tl[0] + 16]


def test_poisson_noise_independent_of_thread_count(monkeypatch):
    amp = np.abs(np.random.default_rng(8).standard_normal((10, 16, 16))).astype(np.float32)
    monkeypatch.setattr(forward, "_NOISE_CHUNK", 300)
    monkeypatch.setattr(forward.os, "cpu_count", lambda: 1)
    a = forward.poisson_amplitude(amp, 50.0, np.random.default_rng(9))
    monkeypatch.setattr(forward.os, "cpu_count", lambda: 4)
    b = forward.poisson_amplitude(amp, 50.0, np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    c = forward.poisson_amplitude(amp, 50.0, np.random.default_rng(10))
    assert not np.array_equal(a, c)


# ---------------------------------------------------------------- object and probe

def test_make_object_properties_and_determinism():
    a = make_object(96, 40, np.random.default_rng(1))
    b = make_object(96, 40, np.random.default_rng(1))
    c = make_object(96, 40, np.random.default_rng(2))
    assert a.shape == (96, 96) and a.dtype == np.complex64
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    amp, ph = np.abs(a).astype(np.float64), np.angle(a)
    expected = np.pi * np.tanh((amp - amp.max() / 2) / (3 * amp.mean()))
    np.testing.assert_allclose(ph, expected, atol=1e-4)
    flat = make_object(96, 40, np.random.default_rng(1), with_phase=False)
    np.testing.assert_allclose(flat.real, amp, rtol=1e-5)
    assert not flat.imag.any()
    assert flat.real.min() >= 0


def test_make_object_amplitude_formula():
    rng = np.random.default_rng(3)
    obj = make_object(32, 5, rng, with_phase=False)
    from scipy.ndimage import gaussian_filter
    from skimage.draw import line
    ends = np.random.default_rng(3).integers(0, 64, size=(5, 4))
    canvas = np.zeros((64, 64))
    for r0, c0, r1, c1 in ends:
        canvas[line(r0, c0, r1, c1)] = 1
    amp = gaussian_filter(canvas, 1) + 2 * gaussian_filter(canvas, 5) + 5 * gaussian_filter(
        canvas, 10)
    np.testing.assert_allclose(obj.real, amp[16:48, 16:48], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("N", [64, 128])
def test_probe_normalized_and_centred(N):
    p = make_probe(N)
    assert p.shape == (N, N) and p.dtype == np.complex64
    assert np.abs(p).max() == pytest.approx(1.0, abs=1e-6)
    inten = np.abs(p).astype(np.float64) ** 2
    rows, cols = np.indices(inten.shape)
    assert abs((inten * rows).sum() / inten.sum() - N / 2) < 0.5
    assert abs((inten * cols).sum() / inten.sum() - N / 2) < 0.5
    # symmetric about (N//2, N//2) apart from the unpaired row/col 0
    sub = np.abs(p[1:, 1:])
    np.testing.assert_allclose(sub, sub[::-1, ::-1], atol=1e-5)
    np.testing.assert_array_equal(p, make_probe(N))
    recipe = probes.probe_recipe(N)
    assert recipe["pupil_radius_px"] == 0.1875 * N and recipe["kind"]


def test_probe_pupil_support():
    p = make_probe(64, 0.1875, 14.0)
    pupil = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(p.astype(np.complex128))))
    k = np.arange(64) - 32
    r = np.hypot(k[:, None], k[None, :])
    assert np.abs(pupil[r > 12.5]).max() < 1e-4 * np.abs(pupil).max()


# ---------------------------------------------------------------- spec

@pytest.mark.parametrize("kw,pattern", [
    (dict(N=48), r"^GridLinesSpec\.N=48 is not a power of two \(allowed: 16, 32, 64, \.\.\. "
                 r"<= object_size=392\)$"),
    (dict(N=8), r"^GridLinesSpec\.N=8 is out of range \(allowed: 16\.\.392\)$"),
    (dict(object_size=96, N=128), r"^GridLinesSpec\.N=128 is out of range \(allowed: 16\.\.96\)$"),
    (dict(N=64.5), r"^GridLinesSpec\.N=64\.5 must be an integer$"),
    (dict(N=64.0), r"^GridLinesSpec\.N=64\.0 must be an integer$"),
    (dict(gridsize=3), r"^GridLinesSpec\.gridsize=3 is not allowed \(choose one of: 1, 2\)$"),
    (dict(train_stride=0), r"^GridLinesSpec\.train_stride=0 is out of range \(allowed: 1\.\.1024\)$"),
    (dict(object_size=96, gridsize=2, test_stride=40),
     r"^GridLinesSpec\.test_stride=40 leaves fewer than gridsize=2 scan positions per side "
     r"\(allowed: 1\.\.32 for object_size=96, N=64\)$"),
    (dict(nphotons=0), r"^GridLinesSpec\.nphotons=0 is out of range \(allowed: > 0 and <= 1e\+15\)$"),
    (dict(nphotons=float("nan")), r"^GridLinesSpec\.nphotons=nan must be a finite number$"),
    (dict(nphotons=1e16), r"^GridLinesSpec\.nphotons=1e\+16 is out of range \(allowed: > 0 and "
                          r"<= 1e\+15\)$"),
    (dict(n_lines=0), r"^GridLinesSpec\.n_lines=0 is out of range \(allowed: 1\.\.100000\)$"),
    (dict(n_test_objects=0), r"^GridLinesSpec\.n_test_objects=0 is out of range \(allowed: 1\.\.64\)$"),
    (dict(train_seed=-1), r"^GridLinesSpec\.train_seed=-1 is out of range \(allowed: 0\.\.4294967295\)$"),
    (dict(with_phase="yes"), r"^GridLinesSpec\.with_phase='yes' must be true or false$"),
    (dict(probe_pupil_radius=0.6), r"^GridLinesSpec\.probe_pupil_radius=0\.6 is out of range "
                                   r"\(allowed: > 0 and <= 0\.5\)$"),
    (dict(probe_defocus=float("inf")), r"^GridLinesSpec\.probe_defocus=inf must be a finite number$"),
    (dict(object_size=8, N=16), r"^GridLinesSpec\.object_size=8 is out of range \(allowed: 16\.\.8192\)$"),
])
def test_spec_validation(kw, pattern):
    from ptycho.config.validation import ConfigError
    with pytest.raises(ConfigError, match=pattern) as exc:
        GridLinesSpec(**kw)
    # the error names its field, so a CLI can name the flag without parsing the text
    assert exc.value.owner == "GridLinesSpec" and exc.value.field == next(
        k for k in ("N", "gridsize", "train_stride", "test_stride", "nphotons", "n_lines",
                    "n_test_objects", "train_seed", "with_phase", "probe_pupil_radius",
                    "probe_defocus", "object_size") if pattern.startswith(rf"^GridLinesSpec\.{k}"))


def test_spec_is_the_simulation_config_plus_N_and_gridsize():
    from dataclasses import fields

    from ptycho.config.config import SimulationConfig
    from ptycho.config.study_config import StudyConfig
    assert issubclass(GridLinesSpec, SimulationConfig)
    assert {f.name for f in fields(GridLinesSpec)} == (
        {f.name for f in fields(SimulationConfig)} | {"N", "gridsize"})
    cfg = StudyConfig().replace(N=32, object_size=96, gridsize=2, nphotons=1e6)
    spec = gl.spec_for(cfg)
    assert (spec.N, spec.gridsize, spec.object_size, spec.nphotons) == (32, 2, 96, 1e6)


def test_spec_dict_and_cache_key():
    spec = GridLinesSpec()
    d = spec.to_dict()
    assert d["N"] == 64 and d["object_size"] == 392 and d["nphotons"] == 1e9
    assert set(d) == {f.name for f in dataclasses.fields(GridLinesSpec)}
    key = spec.cache_key()
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == GridLinesSpec(nphotons=10 ** 9).cache_key()   # int and float photons alike
    assert GridLinesSpec(nphotons=10 ** 9).to_dict()["nphotons"] == 1e9
    assert key != GridLinesSpec(nphotons=1e8).cache_key()
    assert key != GridLinesSpec(with_phase=False).cache_key()
    json.dumps(d)


# ---------------------------------------------------------------- end to end + cache

def test_simulate_grid_lines_files_and_cache(tmp_path):
    spec = small_spec()
    paths = simulate_grid_lines(spec, tmp_path)
    assert not paths.cached
    assert paths.train.parent.name == spec.cache_key()[:16]
    assert sorted(p.name for p in paths.train.parent.iterdir()) == ["test.npz", "train.npz"]
    with np.load(paths.train, allow_pickle=False) as tr, \
            np.load(paths.test, allow_pickle=False) as te:
        mtr = json.loads(str(tr["_metadata"]))
        mte = json.loads(str(te["_metadata"]))
        assert tr["diffraction"].shape == (2 * 9 * 9, 32, 32, 1)
        assert te["diffraction"].shape == (2 * 5 * 5, 32, 32, 1)
        assert te["YY_ground_truth"].shape == (96, 96, 1)
        assert te["YY_ground_truth"].dtype == np.complex64
        assert te["YY_ground_truth_all"].shape == (2, 96, 96)
        gt_all = te["YY_ground_truth_all"]
        np.testing.assert_array_equal(te["YY_ground_truth"][..., 0], gt_all[0])
        assert "YY_ground_truth" not in tr.files
        # objects come from the documented seeds; train and test differ
        rng = np.random.default_rng(spec.test_seed)
        np.testing.assert_array_equal(gt_all[0], make_object(96, 40, rng))
        np.testing.assert_array_equal(gt_all[1], make_object(96, 40, rng))
        train0 = make_object(96, 40, np.random.default_rng(spec.train_seed))
        assert not np.allclose(train0, gt_all[0])
        np.testing.assert_allclose(tr["Y_phi"][0, ..., 0], np.angle(train0[:32, :32]),
                                   atol=1e-6)
    assert mtr["split"] == "train" and mte["split"] == "test"
    assert mtr["scale"] == mte["scale"] > 0
    assert mtr["format_version"] == FORMAT_VERSION
    assert mtr["stride"] == 8 and mte["stride"] == 16
    assert mtr["n_side"] == 9 and mte["n_patterns"] == 50
    for k, v in spec.to_dict().items():
        assert mtr[k] == v and mte[k] == v
    assert mtr["probe"]["defocus_rad_at_pupil_edge"] == 3.0
    assert "generated_at" in mtr

    # same spec: reused, untouched
    mtimes = (paths.train.stat().st_mtime_ns, paths.test.stat().st_mtime_ns)
    again = simulate_grid_lines(spec, tmp_path)
    assert again.cached and again.train == paths.train
    assert (again.train.stat().st_mtime_ns, again.test.stat().st_mtime_ns) == mtimes

    # deterministic: a fresh directory gives identical arrays
    other = simulate_grid_lines(spec, tmp_path / "fresh")
    with np.load(paths.train) as a, np.load(other.train) as b:
        np.testing.assert_array_equal(a["diffraction"], b["diffraction"])

    # different spec: different directory
    diff = simulate_grid_lines(small_spec(nphotons=1e6), tmp_path)
    assert not diff.cached and diff.train.parent != paths.train.parent

    # a damaged cache entry is regenerated
    paths.test.write_bytes(b"not an npz")
    fixed = simulate_grid_lines(spec, tmp_path)
    assert not fixed.cached
    with np.load(fixed.test) as te:
        assert te["diffraction"].shape[0] == 50
    assert not list(paths.train.parent.glob("*.tmp.npz"))
