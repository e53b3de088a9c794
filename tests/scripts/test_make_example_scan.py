"""scripts/studies/make_example_scan.py: the defaults work, bad values are refused in one
line before anything is written, and a folder is written whole or not at all."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

import make_example_scan
from ptycho.formats import read_scan

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "data" / "run1084_recon3_postPC.npz"


def _state(path: Path):
    if not path.exists():
        return None
    return {str(p.relative_to(path)): (hashlib.sha256(p.read_bytes()).hexdigest()
                                       if p.is_file() else "dir")
            for p in sorted(path.rglob("*"))}


def test_defaults_write_every_layout(tmp_path, capsys):
    """Only the output folder given (the pattern size, dose and bad pixels at their
    defaults): a 64 x 64 spiral scan in the three layouts, readable back."""
    out = tmp_path / "example"
    assert make_example_scan.main(["--output-dir", str(out), "--n-positions", "40",
                                   "--object-size", "128"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("40 positions spanning ")
    assert "; N = 64; mean counts per pattern " in printed[0]
    assert printed[1:] == [str(out / "scan_ptychopinn.npz"), str(out / "ptychodus" / "diffraction.h5"),
                           str(out / "ptychodus" / "product.h5"), str(out / "scan.cxi")]
    assert sorted(p.name for p in out.iterdir()) == ["ptychodus", "scan.cxi", "scan_ptychopinn.npz",
                                                     "truth.npz"]
    raw = read_scan(out / "scan_ptychopinn.npz")
    assert raw.patterns.shape == (40, 64, 64) and raw.unit == "counts"
    assert int(raw.bad_pixels.sum()) == round(0.002 * 64 * 64)     # the default fraction
    assert raw.patterns[:, ~raw.bad_pixels].sum((1)).mean() == pytest.approx(1e6, rel=0.05)


@pytest.mark.parametrize("value, shown", [("0", "0"), ("-5", "-5"), ("nan", "nan"),
                                          ("1e16", "1e+16")])
def test_bad_dose_is_refused_before_writing(tmp_path, capsys, value, shown):
    out = tmp_path / "never"
    assert make_example_scan.main(["--output-dir", str(out), "--nphotons", value]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --nphotons {shown} is out of range (allowed: > 0 and <= 1e+15 mean counts "
        "per pattern)"]
    assert not out.exists()


def test_a_refused_layout_leaves_the_folder_as_it_was(tmp_path, capsys):
    """With --from, the 'dataset' layout refuses a scan with bad pixels: nothing of the
    other layouts is written (they were written before it), and an existing folder keeps
    its files byte for byte."""
    out = tmp_path / "scan"
    argv = ["--from", str(SOURCE), "--n-positions", "20", "--output-dir", str(out),
            "--bad-pixel-fraction", "0.01"]
    assert make_example_scan.main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: dataset_arrays: the scan has bad pixels, which this project's dataset NPZ "
        "cannot hold (expected bad_pixel_fraction=0; the other layouts keep them)"]
    assert not out.exists()
    assert make_example_scan.main(argv[:-2] + ["--layouts", "npz"]) == 0
    (out / "notes.txt").write_text("mine")
    before = _state(out)
    assert make_example_scan.main(argv) == 2
    assert _state(out) == before
    # a successful rerun replaces the script's own files and keeps the others
    assert make_example_scan.main(argv[:-2] + ["--layouts", "cxi"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "scan.cxi", "truth.npz"]
    with np.load(out / "truth.npz") as z:
        assert z["positions_px"].shape == (20, 2)


def _source_positions():
    with np.load(SOURCE) as z:
        return (np.asarray(z["xcoords"], np.float64), np.asarray(z["ycoords"], np.float64),
                np.asarray(z["xcoords_start"], np.float64), np.asarray(z["ycoords_start"], np.float64))


@pytest.mark.parametrize("subset", [None, "dense", "first"])
def test_n_positions_takes_the_dense_middle_or_the_first_of_the_scan(tmp_path, subset):
    """--n-positions K with --from: by default (dense) the K positions nearest the centre of
    the true positions' bounding box, in the file's order; --subset first the first K (the
    behaviour before the flag). Both checked against a selection computed here by brute
    force, for the true and the nominal (written) positions."""
    k, out = 40, tmp_path / "scan"
    argv = ["--from", str(SOURCE), "--n-positions", str(k), "--positions", "nominal",
            "--layouts", "npz", "--output-dir", str(out)]
    assert make_example_scan.main(argv + (["--subset", subset] if subset else [])) == 0
    x, y, x0, y0 = _source_positions()
    if subset == "first":
        chosen = list(range(k))
    else:
        cx, cy = (min(x) + max(x)) / 2, (min(y) + max(y)) / 2
        by_distance = sorted(range(len(x)), key=lambda i: (math.hypot(x[i] - cx, y[i] - cy), i))
        chosen = sorted(by_distance[:k])
    with np.load(out / "truth.npz") as z:
        np.testing.assert_array_equal(z["positions_px"], np.stack([x, y], 1)[chosen])
        np.testing.assert_array_equal(z["written_positions_px"], np.stack([x0, y0], 1)[chosen])
        true_xy = z["positions_px"]
    spread = np.ptp(true_xy, axis=0)
    if subset == "first":   # a strip: the first rows of the scan
        assert spread[0] > 4 * spread[1]
    else:                   # a compact patch, about as tall as wide
        assert 0.5 < spread[0] / spread[1] < 2


def test_subset_needs_from(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        make_example_scan.main(["--subset", "first", "--output-dir", str(tmp_path / "x")])
    assert info.value.code == 2
    assert "--subset need --from FILE" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
