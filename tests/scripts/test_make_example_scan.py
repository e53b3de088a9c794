"""scripts/studies/make_example_scan.py: the defaults work, bad values are refused in one
line before anything is written, and a folder is written whole or not at all."""
from __future__ import annotations

import hashlib
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
