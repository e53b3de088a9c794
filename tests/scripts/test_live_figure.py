"""scripts/docs/live_figure.py on a tiny scan and model: the PNG is written, small, and the
three moments hold the frames asked for; the last one is ptycho-live's whole scan."""
from __future__ import annotations

import json

import pytest

from ptycho.formats.ptychodus_product import read_product
from torch_fixtures import load_repo_file, tiny_spiral_scan, train_tiny_scan_model


@pytest.fixture(scope="module")
def script():
    return load_repo_file("scripts/docs/live_figure.py")


def test_three_moments_of_a_tiny_scan(script, tmp_path, capsys):
    npz = tiny_spiral_scan(tmp_path / "scan.npz", 8, n_frames=40)
    ckpt = train_tiny_scan_model(npz, tmp_path / "study")
    capsys.readouterr()
    png = tmp_path / "fig" / "live.png"
    assert script.main(["--checkpoint", str(ckpt),
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
