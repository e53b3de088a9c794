"""Tests for ptycho.formats: one synthetic spiral scan read back from every layout.

The scan (ptycho.datagen.spiral_scan): N = 32, 60 jittered Fermat-spiral positions on a
96 px grid-lines object, a 2-mode probe, Poisson counts (1e4 photons per pattern) and 10
bad pixels. It is written as the upstream PtychoPINN NPZ, a Ptychodus diffraction.h5 with
an HDF5 or NPZ product, and CXI; every reader must return the same arrays.
"""
from __future__ import annotations

import logging
import math
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptycho.datagen.grid_lines import make_object
from ptycho.probes import make_probe
from ptycho.datagen.spiral_scan import simulate_spiral_scan
from ptycho.forward import expected_intensity
from ptycho.probes import two_mode_probe
from ptycho.formats import RawScan, detect_format, read_scan, write_product
from ptycho.formats.cxi import far_field_object_pixel_m, write_cxi
from ptycho.formats.geometry import conventional_geometry, metres_to_pixels
from ptycho.formats.ptychodus import write_ptychodus
from ptycho.formats.ptychodus_product import read_product, write_ptychodus_npz_product
from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz

N = 32
NPOS = 60


def refused(path, key) -> str:
    """Regex of the one-line refusal naming ``path`` and ``key``."""
    return rf"^dataset '{re.escape(str(path))}': key '{re.escape(key)}' [^\n]*\(expected [^\n]*\)$"


@pytest.fixture(scope="module")
def scan():
    obj = make_object(96, 40, np.random.default_rng(0))
    return simulate_spiral_scan(obj, N, NPOS, step_px=5.0, jitter_px=0.7,
                                probe_modes=two_mode_probe(N), nphotons=1e4, seed=1,
                                bad_pixel_fraction=0.01)


@pytest.fixture(scope="module")
def files(scan, tmp_path_factory):
    d = tmp_path_factory.mktemp("formats")
    out = {"npz": write_ptychopinn_npz(d / "upstream.npz", scan),
           "diff3d": write_ptychopinn_npz(d / "legacy.npz", scan, key="diff3d"),
           "hwn": write_ptychopinn_npz(d / "hwn.npz", scan, layout="hwn"),
           "nhw1": write_ptychopinn_npz(d / "nhw1.npz", scan, layout="nhw1"),
           "cxi": write_cxi(d / "scan.cxi", scan),
           "cxi_legacy": write_cxi(d / "legacy.cxi", scan, legacy=True),
           "cxi_bare": write_cxi(d / "bare.cxi", scan, with_product=False)}
    out["ptychodus"], out["product"] = write_ptychodus(d / "ptychodus", scan)
    # Ptychodus pair with only the NPZ product beside it.
    (d / "pty_npz").mkdir()
    out["ptychodus_npz"] = shutil.copy(out["ptychodus"], d / "pty_npz" / "diffraction.h5")
    out["product_npz"] = write_ptychodus_npz_product(d / "pty_npz" / "product-in.npz", scan)
    return {k: Path(v) for k, v in out.items()}


# ------------------------------------------------------------------ same scan, every layout

@pytest.mark.parametrize("name, fmt", [
    ("npz", "ptychopinn_npz"), ("diff3d", "ptychopinn_npz"), ("hwn", "ptychopinn_npz"),
    ("nhw1", "ptychopinn_npz"), ("ptychodus", "ptychodus_h5"),
    ("ptychodus_npz", "ptychodus_npz_product"), ("cxi", "cxi"), ("cxi_legacy", "cxi")])
def test_every_layout_reads_the_same_scan(scan, files, name, fmt):
    r = read_scan(files[name])
    assert isinstance(r, RawScan) and r.format == fmt and r.path == str(files[name])
    assert r.patterns.dtype == np.float32 and r.patterns.shape == (NPOS, N, N)
    np.testing.assert_array_equal(r.patterns, scan.counts.astype(np.float32))
    assert r.unit == "counts" and "integer dtype uint32" in r.unit_rule
    assert r.positions_px.dtype == np.float64
    np.testing.assert_allclose(r.positions_px, scan.positions_px, rtol=0, atol=1e-9)
    assert r.probe.dtype == np.complex64 and r.probe.shape == (2, N, N)
    np.testing.assert_array_equal(r.probe, scan.probe)
    np.testing.assert_array_equal(r.bad_pixels, scan.bad_pixels)
    assert r.bad_pixels.dtype == bool and r.bad_pixels.sum() == 10
    np.testing.assert_array_equal(r.object_guess, scan.object)
    assert r.scan_index.dtype == np.int64 and not r.scan_index.any()
    if name == "hwn":
        assert any("(H, W, n)" in note for note in r.notes)
    if name == "nhw1":
        assert any("(n, H, W, 1)" in note for note in r.notes)
    if fmt != "ptychopinn_npz":
        g = r.geometry
        assert g.detector_distance_m == 1.0 and g.photon_energy_eV == pytest.approx(1e4)
        assert g.object_pixel_m == pytest.approx((1e-8, 1e-8), rel=1e-12)


def test_read_positions_reproduce_the_counts(scan, files):
    """Physics check: positions + probe + object read from the Ptychodus pair predict the
    counts (Poisson chi^2 ~ 1); swapping x and y does not."""
    r = read_scan(files["ptychodus"])
    good = ~r.bad_pixels

    def chi2(pos):
        model = expected_intensity(r.object_guess, r.probe, pos, N)[:, good]
        counts = r.patterns[:, good].astype(np.float64)
        keep = model > 5
        return float((((counts - model) ** 2)[keep] / model[keep]).mean())

    assert 0.85 < chi2(r.positions_px) < 1.15
    assert chi2(r.positions_px[:, ::-1]) > 10


def test_cxi_without_product_uses_far_field_pixel_and_centres_the_scan(scan, files):
    r = read_scan(files["cxi_bare"])
    assert r.geometry.object_pixel_m == pytest.approx((1e-8, 1e-8), rel=1e-12)
    shift = r.positions_px - scan.positions_px
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-6)
    half = np.ceil(np.abs(scan.positions_px - scan.positions_px.mean(0)).max(0))
    np.testing.assert_allclose(r.positions_px.mean(0), half + N // 2, atol=1e-6)
    corners = r.positions_px - N // 2
    assert corners.min() >= 0 and (corners.max(0) + N <= 2 * half + N).all()
    np.testing.assert_array_equal(r.patterns, scan.counts.astype(np.float32))


def test_cxi_translation_sign_flag_reads_files_written_with_the_opposite_sign(scan, files,
                                                                             tmp_path):
    """A CXI file whose translations carry the opposite sign: the default reading mirrors
    the scan (the counts disagree with the positions), ``cxi_translation_sign=-1``
    recovers it; the notes record the sign used; other formats refuse -1."""
    p = Path(shutil.copy(files["cxi_bare"], tmp_path / "flipped.cxi"))
    with h5py.File(p, "r+") as f:
        t = f["/entry_1/sample_1/geometry_1/translation"]
        t[:, :2] = -t[:, :2]
    plain, flipped = read_scan(files["cxi_bare"]), read_scan(p, cxi_translation_sign=-1)
    np.testing.assert_allclose(flipped.positions_px, plain.positions_px, atol=1e-6)
    mirrored = read_scan(p)
    centred = mirrored.positions_px - mirrored.positions_px.mean(0)
    np.testing.assert_allclose(centred, -(plain.positions_px - plain.positions_px.mean(0)),
                               atol=1e-6)
    assert any("sign +1 (Ptychodus's" in n and "--cxi-translation-sign -1" in n
               for n in mirrored.notes)
    assert any("sign -1 (negated" in n for n in flipped.notes)
    with pytest.raises(ValueError, match=refused(files["npz"], "cxi_translation_sign")):
        read_scan(files["npz"], cxi_translation_sign=-1)
    with pytest.raises(ValueError, match=refused(p, "translation_sign")):
        read_scan(p, cxi_translation_sign=2)


def test_format_is_detected_by_content_not_extension(files, tmp_path):
    a = shutil.copy(files["npz"], tmp_path / "looks_like.h5")
    b = shutil.copy(files["cxi"], tmp_path / "looks_like.npz")
    assert detect_format(a) == "ptychopinn_npz" and read_scan(a).format == "ptychopinn_npz"
    assert detect_format(b) == "cxi" and read_scan(b).format == "cxi"


def test_explicit_product_and_candidates(scan, files, tmp_path):
    lone = shutil.copy(files["ptychodus"], tmp_path / "diffraction.h5")
    with pytest.raises(ValueError, match=refused(lone, "probe_position_x_m")) as e:
        read_scan(lone)
    assert "product-in.h5" in str(e.value)
    r = read_scan(lone, product=files["product_npz"])
    assert r.format == "ptychodus_npz_product"
    np.testing.assert_allclose(r.positions_px, scan.positions_px, atol=1e-9)
    shutil.copy(files["product"], tmp_path / "product-out.h5")
    assert read_scan(lone).format == "ptychodus_h5"


# ------------------------------------------------------------------ pickles

class _Boom:
    """Unpickling this object creates a marker file (a visible side effect)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))


def _touch(marker):
    Path(marker).write_text("unpickled")
    return {}


def test_pickled_metadata_is_skipped_with_a_note(scan, tmp_path, caplog):
    path = write_ptychopinn_npz(tmp_path / "upstream.npz", scan, extra={
        "_metadata": np.array({"photon_scale": 3.0}, dtype=object)})
    with caplog.at_level(logging.WARNING):
        r = read_scan(path)
    assert "skipped pickled key '_metadata' (never unpickled)" in r.notes
    assert "_metadata" in caplog.text
    np.testing.assert_array_equal(r.patterns, scan.counts.astype(np.float32))


def test_pickled_required_key_is_refused(scan, tmp_path):
    obj = np.empty(NPOS, dtype=object)
    for i in range(NPOS):
        obj[i] = scan.counts[i]
    path = write_ptychopinn_npz(tmp_path / "pickled.npz", scan, extra={"diffraction": obj})
    with pytest.raises(ValueError, match=refused(path, "diffraction")) as e:
        read_scan(path)
    assert "never unpickled" in str(e.value) and "pickled-only" in str(e.value)


def test_no_file_is_ever_unpickled(scan, files, tmp_path, monkeypatch):
    marker = tmp_path / "side_effect.txt"
    boom = np.array([_Boom(marker)], dtype=object)
    up = write_ptychopinn_npz(tmp_path / "boom.npz", scan, extra={"_metadata": boom,
                                                                    "extra_obj": boom})
    prod = tmp_path / "pair" / "product-in.npz"
    prod.parent.mkdir()
    arrays = dict(np.load(files["product_npz"]))
    arrays["comments"] = boom
    np.savez(prod, **arrays)
    diff = shutil.copy(files["ptychodus"], prod.parent / "diffraction.h5")

    import pickle

    def no_pickle(*a, **k):
        raise AssertionError("pickle was called")
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    real_load = np.load
    calls = []

    def checked_load(*a, **k):
        calls.append(k.get("allow_pickle"))
        assert k.get("allow_pickle") is False, "numpy.load must get allow_pickle=False"
        return real_load(*a, **k)
    monkeypatch.setattr(np, "load", checked_load)

    r1 = read_scan(up)
    r2 = read_scan(diff)
    assert calls and all(c is False for c in calls)
    assert not marker.exists()
    assert "skipped pickled key 'extra_obj' (never unpickled)" in r1.notes
    assert any("'comments'" in note for note in r2.notes)
    src = Path(__file__).resolve().parents[3] / "ptycho" / "formats"
    for f in src.glob("*.py"):
        text = f.read_text()
        assert "allow_pickle=True" not in text and "import pickle" not in text, f


# ------------------------------------------------------------------ one-line refusals

def _npz(tmp_path, scan, name="bad.npz", **over):
    arrays = {"xcoords": scan.positions_px[:, 0], "ycoords": scan.positions_px[:, 1],
              "diffraction": scan.counts.astype(np.float32), "probeGuess": scan.probe,
              "bad_pixels": scan.bad_pixels}
    arrays.update(over)
    arrays = {k: v for k, v in arrays.items() if v is not None}   # None = leave the key out
    path = tmp_path / name
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def test_refusals_upstream_npz(scan, tmp_path):
    cases = []
    p = _npz(tmp_path, scan, "count.npz", xcoords=scan.positions_px[:-1, 0],
             ycoords=scan.positions_px[:-1, 1])
    cases.append((p, "diffraction", "different counts"))
    p = _npz(tmp_path, scan, "ycount.npz", ycoords=scan.positions_px[:-1, 1])
    cases.append((p, "ycoords", "has shape"))
    d = scan.counts.astype(np.float32)
    d[3, 5, 7] = np.nan
    cases.append((_npz(tmp_path, scan, "nan.npz", diffraction=d), "diffraction", "1 NaN"))
    d = scan.counts.astype(np.float32)
    good = np.argwhere(~scan.bad_pixels)[0]
    d[2, good[0], good[1]] = -3.0
    cases.append((_npz(tmp_path, scan, "neg.npz", diffraction=d), "diffraction",
                  "1 negative values"))
    big = np.ones((2, N + 2, N + 2), np.complex64)
    cases.append((_npz(tmp_path, scan, "probe.npz", probeGuess=big), "probeGuess",
                  "larger than the patterns"))
    x = scan.positions_px[:, 0].copy()
    x[0] = 1e6
    cases.append((_npz(tmp_path, scan, "off.npz", xcoords=x), "xcoords", "spans"))
    rect = np.zeros((NPOS, N, N + 4), np.float32)
    cases.append((_npz(tmp_path, scan, "rect.npz", diffraction=rect, bad_pixels=None,
                       probeGuess=scan.probe[0]), "diffraction", "non-square"))
    inf = scan.positions_px[:, 1].copy()
    inf[4] = np.inf
    cases.append((_npz(tmp_path, scan, "inf.npz", ycoords=inf), "xcoords", "1 Inf"))
    for path, key, what in cases:
        with pytest.raises(ValueError, match=refused(path, key)) as e:
            read_scan(path)
        assert what in str(e.value), (key, str(e.value))


def test_negative_values_at_bad_pixels_are_tolerated_and_zeroed(scan, tmp_path):
    d = scan.counts.astype(np.float32)
    bad = np.argwhere(scan.bad_pixels)[0]
    d[:, bad[0], bad[1]] = -1.0
    r = read_scan(_npz(tmp_path, scan, diffraction=d))
    ds = r.to_dataset()
    assert (ds.diffraction[:, 0][:, scan.bad_pixels] == 0).all()


def test_refusals_hdf5(scan, files, tmp_path):
    p = tmp_path / "empty.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("something_else", data=np.zeros(3))
    with pytest.raises(ValueError, match=refused(p, "/entry_1/data_1/data")):
        read_scan(p)

    p = tmp_path / "no_translation.cxi"
    with h5py.File(p, "w") as f:
        f.create_dataset("entry_1/data_1/data", data=scan.counts)
    with pytest.raises(ValueError, match=refused(p, "/entry_1/sample_1/geometry_1/translation")):
        read_scan(p)

    p = tmp_path / "no_distance.cxi"
    shutil.copy(files["cxi_bare"], p)
    with h5py.File(p, "a") as f:
        del f["entry_1/instrument_1/detector_1/distance"]
    with pytest.raises(ValueError, match=refused(p, "/entry_1/instrument_1/detector_1/distance")):
        read_scan(p)

    p = tmp_path / "count.cxi"
    shutil.copy(files["cxi"], p)
    with h5py.File(p, "a") as f:
        t = f["entry_1/sample_1/geometry_1/translation"][()]
        del f["entry_1/sample_1/geometry_1/translation"]
        f["entry_1/sample_1/geometry_1/translation"] = t[:-2]
    with pytest.raises(ValueError, match=refused(p, "/entry_1/sample_1/geometry_1/translation")):
        read_scan(p)

    for name in ("product", "product_npz"):          # a product alone has no patterns
        with pytest.raises(ValueError, match=refused(files[name], "patterns")) as e:
            read_scan(files[name])
        assert "product without diffraction patterns" in str(e.value)


def test_refusals_product_without_pixel_sizes(scan, files, tmp_path):
    d = tmp_path / "h5"
    d.mkdir()
    diff = shutil.copy(files["ptychodus"], d / "diffraction.h5")
    prod = shutil.copy(files["product"], d / "product-in.h5")
    with h5py.File(prod, "a") as f:
        del f["object"].attrs["pixel_width_m"]
    with pytest.raises(ValueError, match=refused(prod, "object@pixel_width_m")):
        read_scan(diff)

    arrays = dict(np.load(files["product_npz"]))
    del arrays["object_pixel_height_m"]
    p = tmp_path / "product.npz"
    np.savez(p, **arrays)
    with pytest.raises(ValueError, match=refused(p, "object_pixel_height_m")):
        read_scan(diff, product=p)


def test_refusals_misc(scan, files, tmp_path):
    with pytest.raises(ValueError, match=refused(files["npz"], "unit")) as e:
        read_scan(files["npz"], unit="photons")
    assert "'auto', 'counts', 'amplitude'" in str(e.value)
    p = tmp_path / "text.npz"
    p.write_text("not a scan")
    with pytest.raises(ValueError, match=rf"^dataset '{re.escape(str(p))}': cannot read"):
        read_scan(p)
    with pytest.raises(ValueError, match=rf"^dataset '{re.escape(str(tmp_path / 'no'))}'"):
        read_scan(tmp_path / "no")
    r = read_scan(files["npz"])
    with pytest.raises(ValueError, match=refused(files["npz"], "diffraction")):
        r.to_dataset(N=64)
    with pytest.raises(ValueError, match=refused(files["npz"], "photon_scale")):
        r.to_dataset(photon_scale=-1.0)
    no_probe = _npz(tmp_path, scan, "noprobe.npz", probeGuess=None)
    with pytest.raises(ValueError, match=refused(no_probe, "probeGuess")):
        read_scan(no_probe).to_dataset()


# ------------------------------------------------------------------ product round trip

def test_write_product_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    obj = (rng.random((40, 50)) * np.exp(1j * rng.random((40, 50)))).astype(np.complex64)
    probe = two_mode_probe(16)
    pos = rng.uniform(10, 30, size=(25, 2))
    path = write_product(tmp_path / "p.h5", obj, probe, pos, object_pixel_m=(2e-8, 3e-8),
                         detector_distance_m=1.5, photon_energy_eV=8000.0, name="rt",
                         comments="c", object_center_m=(1e-6, -2e-6))
    assert sorted(x.name for x in tmp_path.iterdir()) == ["p.h5"]     # no temp file left
    p = read_product(path)
    back = metres_to_pixels(p["x_m"], p["y_m"], p["object_center_m"], p["object_pixel_m"],
                            p["object_shape"])
    np.testing.assert_allclose(back, pos, rtol=0, atol=1e-9)
    assert p["object_pixel_m"] == (2e-8, 3e-8) and p["object_center_m"] == (1e-6, -2e-6)
    np.testing.assert_array_equal(p["probe"], probe)
    np.testing.assert_array_equal(p["object"], obj)
    with h5py.File(path, "r") as f:
        assert f["probe"].shape == (1, 2, 16, 16) and f["object"].shape == (1, 40, 50)
        assert f["probe_position_indexes"][()].tolist() == list(range(25))
        assert f.attrs["photon_energy_eV"] == 8000.0 and f.attrs["name"] == "rt"
        assert f.attrs["comments"] == "c"

    conv = write_product(tmp_path / "conv.h5", obj, probe[0], pos)
    with h5py.File(conv, "r") as f:
        assert f.attrs["detector_object_distance_m"] == 1.0
        assert f.attrs["photon_energy_eV"] == 10000.0
        assert f["object"].attrs["pixel_width_m"] == 1e-8
        assert "onventional values, not measured" in f.attrs["comments"]
        assert f["probe"].shape == (1, 1, 16, 16)


def test_metres_to_pixels_hand_computed():
    # x: (3.5e-7 - 1e-7) / 2e-8 + (101 - 1) / 2 = 12.5 + 50 = 62.5
    # y: (-1e-7 - 0) / 1e-8 + (64 - 1) / 2 = -10 + 31.5 = 21.5
    got = metres_to_pixels([3.5e-7], [-1e-7], (1e-7, 0.0), (1e-8, 2e-8), (64, 101))
    np.testing.assert_allclose(got, [[62.5, 21.5]], rtol=0, atol=1e-9)
    # Far field: lambda = hc / E = 1.239841984e-6 eV m / 1e4 eV; z = 2 m; 64 x 75 um.
    lam = 1.239841984e-6 / 1e4
    assert far_field_object_pixel_m(1e4, 2.0, 64, 75e-6) == pytest.approx(
        lam * 2.0 / (64 * 75e-6), rel=1e-9)
    assert far_field_object_pixel_m(1e4, 2.0, 64, 75e-6) == pytest.approx(5.16600827e-8,
                                                                           rel=1e-8)


# ------------------------------------------------------------------ units

def test_unit_detection(scan, tmp_path):
    c = scan.counts
    amp = np.sqrt(c.astype(np.float32)) / 4.0
    cases = [(c.astype(np.uint16), "auto", "counts", "integer dtype uint16"),
             (c.astype(np.float32), "auto", "counts", "integer values"),
             (c.astype(np.float64), "auto", "counts", "max"),
             (amp, "auto", "amplitude", "non-integer values"),
             ((c > 0).astype(np.float32), "auto", "amplitude", "<= 1"),
             (amp, "counts", "counts", "forced"),
             (c.astype(np.uint16), "amplitude", "amplitude", "forced")]
    for i, (d, unit, want, rule) in enumerate(cases):
        r = read_scan(_npz(tmp_path, scan, f"u{i}.npz", diffraction=d), unit=unit)
        assert r.unit == want and rule in r.unit_rule, (i, r.unit, r.unit_rule)
        assert r.patterns.dtype == np.float32
        np.testing.assert_array_equal(r.patterns, d.astype(np.float32))


# ------------------------------------------------------------------ to_dataset

def test_to_dataset_counts(scan, files):
    r = read_scan(files["ptychodus"])
    s = scan.photon_scale
    ds = r.to_dataset(gridsize=1, photon_scale=s)
    assert ds.diffraction.shape == (NPOS, 1, N, N) and ds.diffraction.dtype == np.float32
    assert ds.coords_offsets.shape == (NPOS, 1, 1, 2) and ds.coords_offsets.dtype == np.float32
    assert not ds.coords_nominal.any()
    want = (np.sqrt(scan.counts.astype(np.float64)) / s).astype(np.float32)
    want[:, scan.bad_pixels] = 0
    np.testing.assert_array_equal(ds.diffraction[:, 0], want)
    np.testing.assert_array_equal(ds.bad_pixels, scan.bad_pixels)
    assert ds.probe.shape == (2, N, N) and ds.probe.dtype == np.complex64
    np.testing.assert_allclose(ds.probe, two_mode_probe(N), rtol=0, atol=1e-6)
    assert ds.object_index.dtype == np.int64 and not ds.object_index.any()
    m = ds.metadata
    assert set(m) == {"format", "source_path", "unit", "unit_rule", "scale", "normalisation",
                      "mean_counts_per_pattern", "amplitude_rms", "canvas_shape",
                      "position_origin_px", "position_convention", "n_patterns", "gridsize",
                      "geometry", "notes"}
    assert m["unit"] == "counts" and m["format"] == "ptychodus_h5" and m["scale"] == s
    assert ds.photon_scale == s
    assert f"sqrt(counts) / {s:.6g}" in m["normalisation"]
    good = scan.counts[:, ~scan.bad_pixels].sum(1).mean()
    assert m["mean_counts_per_pattern"] == pytest.approx(good)
    # counts = (s * A)^2 exactly inverts at measured pixels
    np.testing.assert_allclose((s * ds.diffraction[:, 0][:, ~scan.bad_pixels]) ** 2,
                               scan.counts[:, ~scan.bad_pixels], rtol=1e-5, atol=1e-3)
    # patches fit inside the canvas; the scan was already on it, so nothing moved
    assert m["position_origin_px"] == [0.0, 0.0]
    corners = ds.centres[:, 0] - N // 2
    assert corners.min() >= 0
    H, W = m["canvas_shape"]
    assert np.ceil(corners[:, 0].max()) + N <= W and np.ceil(corners[:, 1].max()) + N <= H
    np.testing.assert_allclose(ds.centres[:, 0], scan.positions_px, atol=1e-4)

    d1 = r.to_dataset()                                 # default s = 1
    assert d1.metadata["scale"] == 1.0
    np.testing.assert_array_equal(d1.diffraction[:, 0][:, ~scan.bad_pixels],
                                  np.sqrt(scan.counts[:, ~scan.bad_pixels].astype(np.float64))
                                  .astype(np.float32))


def test_to_dataset_shift_amplitudes_and_single_mode(scan, tmp_path):
    amp = (np.sqrt(scan.counts.astype(np.float64)) / 7.0).astype(np.float32)
    pos = scan.positions_px - 40.0                       # corners now negative
    p = _npz(tmp_path, scan, xcoords=pos[:, 0], ycoords=pos[:, 1], diffraction=amp,
             probeGuess=make_probe(N), bad_pixels=None)
    r = read_scan(p)
    assert r.unit == "amplitude" and r.probe.shape == (1, N, N)
    ds = r.to_dataset(photon_scale=7.0)
    np.testing.assert_array_equal(ds.diffraction[:, 0], amp)          # passed through
    assert ds.metadata["scale"] == 7.0 and ds.bad_pixels is None
    assert ds.probe.shape == (N, N)
    np.testing.assert_array_equal(ds.probe, make_probe(N))
    shift = np.array(ds.metadata["position_origin_px"])
    assert (shift == np.round(shift)).all() and (shift > 0).all()
    corners = ds.centres[:, 0] - N // 2
    assert 0 <= corners.min(0).min() and (corners.min(0) < 1).all()
    np.testing.assert_allclose(ds.centres[:, 0] - shift, pos, atol=1e-4)   # invertible


def test_to_dataset_pads_a_smaller_probe(scan, tmp_path):
    small = make_probe(16)
    r = read_scan(_npz(tmp_path, scan, probeGuess=small))
    ds = r.to_dataset()
    assert ds.probe.shape == (N, N)
    np.testing.assert_array_equal(ds.probe[8:24, 8:24], small)
    assert np.abs(ds.probe).sum() == pytest.approx(np.abs(small).sum(), rel=1e-6)


def test_project_npz_is_read(tmp_path):
    from ptycho.io import save_dataset

    rng = np.random.default_rng(3)
    amp = rng.random((5, 16, 16, 1)).astype(np.float32)
    offs = rng.uniform(10, 20, size=(5, 1, 2, 1)).astype(np.float32)
    p = save_dataset(tmp_path / "proj.npz", {
        "diffraction": amp, "coords_offsets": offs,
        "coords_nominal": np.zeros_like(offs),
        "probeGuess": make_probe(16)}, {"scale": 2.5})
    r = read_scan(p)
    assert r.format == "project_npz" and r.unit == "amplitude"
    ds = r.to_dataset()
    assert ds.metadata["scale"] == 2.5
    np.testing.assert_array_equal(ds.diffraction, np.moveaxis(amp, -1, 1))
    np.testing.assert_allclose(ds.centres[:, 0], offs[:, 0, :, 0], atol=1e-5)


def test_to_dataset_gridsize_2(scan, files):
    r = read_scan(files["cxi"])
    ds = r.to_dataset(gridsize=2, photon_scale=scan.photon_scale)
    assert ds.diffraction.shape[1:] == (4, N, N) and ds.coords_offsets.shape[1:] == (4, 1, 2)
    assert ds.gridsize == 2 and ds.metadata["gridsize"] == 2
    amp, _ = r.amplitudes(scan.photon_scale)
    centres = ds.centres                                                  # (g, 4, 2)
    for g in (0, 17, ds.n - 1):
        for c in range(4):
            j = int(np.argmin(np.abs(scan.positions_px - centres[g, c]).sum(1)))
            np.testing.assert_array_equal(ds.diffraction[g, c], amp[j])
    np.testing.assert_allclose(ds.coords_nominal.mean(axis=1), 0, atol=1e-4)
    assert math.isfinite(ds.metadata["amplitude_rms"])


def test_conventional_geometry_is_self_consistent():
    g = conventional_geometry(N)
    assert far_field_object_pixel_m(g.photon_energy_eV, g.detector_distance_m, N,
                                    g.detector_pixel_m[1]) == pytest.approx(1e-8, rel=1e-12)


def test_the_run1084_benchmark_scan_reads_at_its_real_positions(tmp_path):
    """scripts/studies/make_run1084_scan.py: the real object, experimental probe and the
    file's corrected positions, simulated and read back as a non-grid scan with truth."""
    import make_run1084_scan
    from ptycho.formats.readers import read_dataset
    repo = Path(__file__).resolve().parents[3]
    out = tmp_path / "scan.npz"
    assert make_run1084_scan.main(["--output", str(out), "--n-positions", "40",
                                   "--nphotons", "1e5", "--seed", "3"]) == 0
    with np.load(repo / "data/run1084_recon3_postPC.npz", allow_pickle=False) as z:
        x, y, obj = z["xcoords"][:40], z["ycoords"][:40], z["objectGuess"]
    data = read_dataset(str(out), N=64, gridsize=1)
    assert data.n == 40 and data.N == 64
    origin = np.asarray(data.metadata.get("position_origin_px", [0.0, 0.0]))
    np.testing.assert_allclose(data.centres[:, 0] - origin, np.stack([x, y], 1), atol=1e-4)
    assert data.ground_truth is None  # a foreign file's objectGuess is not ground truth
    assert obj.shape == (227, 226)
    counts = (data.diffraction.astype(np.float64) * data.photon_scale) ** 2
    assert counts.sum((1, 2, 3)).mean() == pytest.approx(1e5, rel=0.02)
    # the same seed writes the same file
    again = tmp_path / "again.npz"
    make_run1084_scan.main(["--output", str(again), "--n-positions", "40", "--nphotons",
                            "1e5", "--seed", "3"])
    with np.load(out) as a, np.load(again) as b:
        np.testing.assert_array_equal(a["diffraction"], b["diffraction"])
