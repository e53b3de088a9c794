"""Live scan files (ptycho.formats.live_hdf5) in the three layouts: followed while written
(LiveScanReader) and read, once written, by the ordinary reader (read_scan): the frames,
positions, probe and bad pixels that were written; a frame whose position never arrived is
dropped with one note; ptycho-live-sim re-plays a finished live file."""
from __future__ import annotations

import logging
import os

import h5py
import numpy as np
import pytest

from ptycho.config.live_config import LIVE_LAYOUTS, LiveSimConfig
from ptycho.datagen.live_detector import write_live_scan
from ptycho.formats import detect_format, read_scan
from ptycho.formats.geometry import ELECTRON_VOLT_J, wavelength_m
from ptycho.formats.live_hdf5 import LAYOUTS, LiveScanReader, LiveScanWriter

N, K, CHUNK, LOST = 16, 24, 4, 9
PIXEL_M = (2e-8, 3e-8)          # (y, x): unequal, so that a swapped axis shows


def _frames():
    rng = np.random.default_rng(11)
    probe = (rng.normal(size=(2, N, N)) + 1j * rng.normal(size=(2, N, N))).astype(np.complex64)
    bad = np.zeros((N, N), bool)
    bad[3, 4] = bad[10, 2] = True
    patterns = rng.poisson(6.0, size=(K, N, N)).astype(np.float32)
    positions = rng.uniform(12.0, 70.0, size=(K, 2))
    return probe, bad, patterns, positions


def _write(path, layout, *, lost=LOST, close=True):
    """The frames chunk by chunk; frame 5's position one chunk late, ``lost``'s never."""
    probe, bad, patterns, positions = _frames()
    w = LiveScanWriter(path, layout, probe, bad, "counts", chunk=CHUNK, pixel_m=PIXEL_M)
    for lo in range(0, K, CHUNK):
        xy = positions[lo:lo + CHUNK].copy()
        for i in (5, lost):
            if lo <= i < lo + CHUNK:
                xy[i - lo] = np.nan
        w.append(patterns[lo:lo + CHUNK], xy)
        if lo == 8:
            w.set_position(5, positions[5:6])
    if close:
        w.close()
    return probe, bad, patterns, positions


def test_the_cxi_layout_is_offered():
    assert "cxi" in LIVE_LAYOUTS and set(LIVE_LAYOUTS) == set(LAYOUTS)


@pytest.mark.parametrize("layout", LIVE_LAYOUTS)
def test_the_follower_gives_what_was_written_in_every_layout(layout, tmp_path):
    probe, bad, patterns, positions = _write(tmp_path / "scan.h5", layout)
    r = LiveScanReader(tmp_path / "scan.h5")
    try:
        idx, pats, xy, _ = r.poll()
        assert r.layout_name == layout and r.is_complete()
        assert sorted(idx.tolist()) == [i for i in range(K) if i != LOST]
        assert r.pending == [LOST]
        assert np.array_equal(pats, patterns[idx])
        assert np.allclose(xy, positions[idx], rtol=0, atol=1e-9)
        assert np.array_equal(r.probe, probe) and np.array_equal(r.bad_pixels, bad)
        assert r.pixel_m == (None if layout == "ptychopinn" else PIXEL_M)
    finally:
        r.close()


def test_another_writers_cxi_is_followed_with_the_far_field_pixel(tmp_path):
    """A CXI written with SWMR by another program: patterns at entry_1/data_1/data (no soft
    link), no root attributes: the object pixel is lambda z / (N * detector pixel)."""
    _, _, patterns, positions = _frames()
    z, e_ev, det = 2.5, 8000.0, (75e-6, 55e-6)           # (y, x) detector pixel
    pix = tuple(wavelength_m(e_ev) * z / (N * d) for d in det)
    path = tmp_path / "other.cxi"
    with h5py.File(path, "w", libver="latest") as f:
        f["entry_1/data_1/data"] = patterns
        f["entry_1/sample_1/geometry_1/translation"] = np.stack(
            [positions[:, 0] * pix[1], positions[:, 1] * pix[0], np.zeros(K)], axis=1)
        f["entry_1/image_1/data"] = np.ones((1, N, N), np.complex64)
        f["entry_1/instrument_1/detector_1/distance"] = z
        f["entry_1/instrument_1/detector_1/y_pixel_size"] = det[0]
        f["entry_1/instrument_1/detector_1/x_pixel_size"] = det[1]
        f["entry_1/instrument_1/source_1/energy"] = e_ev * ELECTRON_VOLT_J
        f.swmr_mode = True
    r = LiveScanReader(path)
    try:
        idx, pats, xy, _ = r.poll()
        assert r.layout_name == "cxi" and r.pixel_m == pytest.approx(pix, rel=1e-12)
        assert idx.tolist() == list(range(K)) and np.array_equal(pats, patterns)
        assert np.allclose(xy, positions, rtol=0, atol=1e-9)
        assert r.bad_pixels is None and not r.is_complete()
    finally:
        r.close()


@pytest.mark.parametrize("layout", LIVE_LAYOUTS)
def test_a_finished_live_file_is_an_ordinary_scan_file(layout, tmp_path, caplog):
    path = tmp_path / "scan.h5"
    probe, bad, patterns, positions = _write(path, layout)
    keep = np.arange(K) != LOST
    with caplog.at_level(logging.WARNING):
        scan = read_scan(path)
    assert detect_format(path) == scan.format == ("cxi" if layout == "cxi" else "live_h5")
    assert scan.n == K - 1 and np.array_equal(scan.patterns, patterns[keep])
    assert scan.unit == "counts"
    assert np.array_equal(scan.probe, probe) and np.array_equal(scan.bad_pixels, bad)
    key = "/entry_1/sample_1/geometry_1/translation" if layout == "cxi" else LAYOUTS[layout].x
    dropped = (f"1 frame(s) whose position never arrived (NaN in '{key}'; first: frame {LOST}) "
               f"dropped; {K - 1} of {K} frames read")
    assert dropped in scan.notes
    assert caplog.text.count(dropped) == 1
    expected = positions[keep]
    if layout == "cxi":   # the CXI reader centres the scan on its canvas (ptycho.formats.cxi)
        rel = expected - expected.mean(axis=0)
        expected = rel + np.ceil(np.abs(rel).max(axis=0)) + N // 2
        assert scan.geometry.object_pixel_m == pytest.approx(PIXEL_M, rel=1e-12)
    assert np.allclose(scan.positions_px, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("layout", LIVE_LAYOUTS)
def test_a_live_file_without_any_position_is_refused_in_one_line(layout, tmp_path):
    path = tmp_path / "scan.h5"
    probe, bad, patterns, _ = _frames()
    w = LiveScanWriter(path, layout, probe, bad, "counts", chunk=CHUNK, pixel_m=PIXEL_M)
    w.append(patterns[:3], np.full((3, 2), np.nan))
    w.close()
    key = ("/entry_1/sample_1/geometry_1/translation" if layout == "cxi"
           else LAYOUTS[layout].x)
    with pytest.raises(ValueError) as err:
        read_scan(path)
    assert str(err.value) == (f"dataset '{path}': key '{key}' has no position for any of its "
                              "3 frames (all NaN) (expected a live scan with at least one "
                              "frame whose position arrived)")


def test_an_unfinished_live_file_is_read_as_far_as_it_got(tmp_path):
    path = tmp_path / "scan.h5"
    _write(path, "ptychopinn", close=False)
    scan = read_scan(path)
    assert scan.n == K - 1
    assert (f"the writer did not mark the scan complete (scan_complete = 0): read the {K} "
            "frames written") in scan.notes


@pytest.mark.parametrize("layout", LIVE_LAYOUTS)
def test_ptycho_live_sim_replays_a_finished_live_file(layout, tmp_path):
    """--scan of a live file: the same frames, positions and probe written again."""
    first, again = tmp_path / "first.h5", tmp_path / "again.h5"
    _write(first, layout)
    with open(os.devnull, "w") as null:
        n = write_live_scan(LiveSimConfig(output=str(again), scan=str(first), rate=0,
                                          layout=layout, chunk=5), out=null)
    assert n == K - 1
    a, b = read_scan(first), read_scan(again)
    assert np.array_equal(a.patterns, b.patterns) and np.array_equal(a.probe, b.probe)
    assert np.allclose(a.positions_px, b.positions_px, rtol=0, atol=1e-9)
    assert not [note for note in b.notes if "dropped" in note]
