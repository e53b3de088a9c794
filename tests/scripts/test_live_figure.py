"""scripts/docs/live_figure.py on a tiny scan and model: the PNG is written, small, and the
three moments hold the frames asked for; the last one is ptycho-live's whole scan."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import simulate_spiral_scan
from ptycho.formats.ptychodus_product import read_product
from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz
from ptycho.probes import two_mode_probe
from ptycho_torch.cli import study_main

REPO = Path(__file__).resolve().parents[2]
TINY = ["--N", "32", "--architecture", "fno", "--fno-width", "8", "--fno-modes", "4",
        "--fno-blocks", "1", "--fno-cnn-blocks", "1", "--epochs", "1", "--num-threads", "1",
        "--no-progress-bar", "--batch-size", "8"]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("_live_figure",
                                                  REPO / "scripts" / "docs" / "live_figure.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_three_moments_of_a_tiny_scan(script, tmp_path, capsys):
    obj = make_object(96, 40, np.random.default_rng(8))
    scan = simulate_spiral_scan(obj, 32, 40, step_px=4.0, jitter_px=0.7,
                                probe_modes=two_mode_probe(32), nphotons=1e5, seed=9)
    npz = write_ptychopinn_npz(tmp_path / "scan.npz", scan)
    assert study_main(["--train-npz", str(npz), "--output-dir", str(tmp_path / "study"),
                       *TINY]) == 0
    capsys.readouterr()
    png = tmp_path / "fig" / "live.png"
    assert script.main(["--checkpoint", str(tmp_path / "study" / "runs" / "pinn_fno" /
                                            "model.ckpt"),
                        "--scan", str(npz), "--output", str(png), "--work-dir",
                        str(tmp_path / "work"), "--num-threads", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    # 10 %, 40 % and 100 % of 40 frames
    assert [line.split(" frames")[0] for line in out[:3]] == [
        "moment 1: 4", "moment 2: 16", "moment 3: 40"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 300_000
    live = tmp_path / "work" / "live"
    assert json.loads((live / "live.json").read_text())["frames"] == 40
    assert json.loads((live / "live.json").read_text())["snapshots"] == 3
    assert len(read_product(live / "product-live.h5")["x_m"]) == 40


@pytest.mark.parametrize("moments", ["0.4,0.1", "0,0.5", "0.5,1.5", "a,b"])
def test_bad_moments_are_refused(script, moments, capsys):
    with pytest.raises(SystemExit) as exc:
        script.parse_args(["--checkpoint", "m.ckpt", "--scan", "s.npz", "--moments", moments])
    assert exc.value.code == 2
    assert f"--moments {moments!r}" in capsys.readouterr().err
