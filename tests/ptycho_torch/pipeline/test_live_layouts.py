"""ptycho-live on the three live layouts with a tiny model: a CXI live scan gives the canvas
of the same frames in this project's layout; a finished live file is a scan file that
ptycho-reconstruct reads.

The scan: N = 32, 64 jittered Fermat-spiral positions on a grid-lines object, a 2-mode probe,
Poisson counts; the model: a 1-epoch FNO of width 8 trained on it (seconds).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from ptycho.config.live_config import LiveSimConfig
from ptycho.datagen.live_detector import write_live_scan
from ptycho.formats.ptychodus_product import read_product
from ptycho_torch.cli import live_main, reconstruct_main
from torch_fixtures import tiny_spiral_scan, train_tiny_scan_model



@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("live_layouts")
    npz = tiny_spiral_scan(d / "scan.npz", 5)
    return npz, train_tiny_scan_model(npz, d / "study")


def _write(npz, path, layout, **faults):
    with open(os.devnull, "w") as null:
        write_live_scan(LiveSimConfig(output=str(path), scan=str(npz), rate=0, chunk=8,
                                      layout=layout, **faults), out=null)


def _live(ckpt, source, out):
    return live_main(["--checkpoint", str(ckpt), "--source", str(source), "--output-dir",
                      str(out), "--num-threads", "1", "--poll-seconds", "0.05"])


def test_a_cxi_live_scan_gives_the_canvas_of_the_ptychopinn_layout(trained, tmp_path, capsys):
    npz, ckpt = trained
    for layout in ("ptychopinn", "cxi"):
        _write(npz, tmp_path / f"{layout}.h5", layout, late_position=12)
        assert _live(ckpt, tmp_path / f"{layout}.h5", tmp_path / layout) == 0
        assert "live: 64 frames stitched (0 left out" in capsys.readouterr().out
    for name in ("product-live.h5", "product-out.h5"):
        ref, got = (read_product(tmp_path / d / name) for d in ("ptychopinn", "cxi"))
        assert got["object"].shape == ref["object"].shape
        assert np.allclose(got["object"], ref["object"], rtol=0, atol=1e-6)
        assert np.allclose(got["x_m"], ref["x_m"], rtol=0, atol=1e-15)
        assert np.allclose(got["y_m"], ref["y_m"], rtol=0, atol=1e-15)
        assert np.array_equal(got["probe"], ref["probe"])


def test_ptycho_reconstruct_reads_a_finished_live_file(trained, tmp_path):
    """The ptychopinn-layout live file (one position lost) gives ptycho-reconstruct's object
    of the NPZ's other 63 frames; the CXI live file is read as a CXI file."""
    npz, ckpt = trained
    _write(npz, tmp_path / "live.h5", "ptychopinn", lost_position=30)
    _write(npz, tmp_path / "live.cxi", "cxi")
    scan = dict(np.load(npz, allow_pickle=False))
    keep = np.arange(64) != 30
    for k in ("diffraction", "xcoords", "ycoords", "xcoords_start", "ycoords_start", "scan_index"):
        scan[k] = scan[k][keep]
    np.savez(tmp_path / "ref.npz", **scan)
    rec = ["--checkpoint", str(ckpt), "--num-threads", "1"]
    for data, out in (("live.h5", "a"), ("ref.npz", "b"), ("live.cxi", "c")):
        assert reconstruct_main([*rec, "--data", str(tmp_path / data), "--output-dir",
                                 str(tmp_path / out)]) == 0
    got, ref, cxi = (read_product(tmp_path / d / "product-out.h5") for d in "abc")
    assert len(got["x_m"]) == 63 and len(cxi["x_m"]) == 64
    assert np.allclose(got["object"], ref["object"], rtol=0, atol=1e-6)
    assert np.isfinite(cxi["object"]).all()
