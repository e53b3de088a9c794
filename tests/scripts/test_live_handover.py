"""scripts/studies/live_handover.py: one seed end to end on a small benchmark scan with a tiny
model (trained by the script), bad flags refused in one line before any work, and the
package's product placement and scoring against an independent cut of the truth."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import live_handover
import make_example_scan
from ptycho.evaluation import evaluate_reconstruction
from ptycho.formats.ptychodus_product import read_product, write_product
from ptycho_torch.studies import handover

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "data" / "run1084_recon3_postPC.npz"
TINY = ("--N 64 --architecture fno --fno-width 8 --fno-modes 4 --fno-blocks 1 "
        "--fno-cnn-blocks 1 --epochs 1 --num-threads 1 --no-progress-bar --batch-size 8 "
        "--probe-update none")


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    out = tmp_path_factory.mktemp("handover") / "scan"
    assert make_example_scan.main(["--from", str(SOURCE), "--n-positions", "40", "--nphotons",
                                   "1e4", "--layouts", "dataset,npz",
                                   "--output-dir", str(out)]) == 0
    return out


@pytest.mark.iterative
def test_one_seed_end_to_end(scan, tmp_path, capsys):
    out = tmp_path / "study"
    assert live_handover.main(["--dataset", str(scan / "dataset.npz"), "--scan",
                               str(scan / "scan_ptychopinn.npz"), "--seeds", "3",
                               "--train-args", TINY, "--refine-epochs", "2", "--flat-epochs",
                               "3", "--flat-every", "1", "--num-threads", "1", "--output-dir",
                               str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| seed | live end: network + 2 LSQML epochs (s) |" in printed
    res = json.loads((out / "handover.json").read_text())
    row, live = res["rows"][0], res["details"][0]["live"]
    assert row["seed"] == 3 and live["frames"] == 40
    assert row["time_ratio"] == pytest.approx(row["live_end_s"] / row["flat_s"])
    flat = res["details"][0]["flat"]
    assert live["refined"]["epochs"] == 2 and flat["epochs"] == 3
    # the flat run scored every epoch: the last entry is the final object, the best the max
    assert [c["epoch"] for c in flat["curve"]] == [1, 2, 3]
    assert flat["curve"][-1]["phase_corr"] == pytest.approx(row["flat_phase_corr"])
    assert flat["curve"][-1]["seconds"] == pytest.approx(row["flat_s"])
    assert row["flat_best_phase_corr"] == max(c["phase_corr"] for c in flat["curve"])
    assert -1 <= row["live_phase_corr"] <= 1 and -1 <= row["flat_phase_corr"] <= 1
    # the polish lowers the network's data residual
    assert row["live_residual"] < live["network"]["data_residual"]
    assert res["summary"]["live_end_s"]["mean"] == row["live_end_s"]
    # the finished seed is read back, not run again
    (out / "seed_3" / "live" / "live.json").unlink()
    assert live_handover.main(["--dataset", str(scan / "dataset.npz"), "--scan",
                               str(scan / "scan_ptychopinn.npz"), "--seeds", "3",
                               "--train-args", TINY, "--refine-epochs", "2", "--flat-epochs",
                               "3", "--flat-every", "1", "--num-threads", "1", "--output-dir",
                               str(out)]) == 0
    assert "seed 3: read back from " in capsys.readouterr().out
    assert json.loads((out / "handover.json").read_text())["rows"] == [row]


@pytest.mark.parametrize("flags, message", [
    (["--seeds", "1,x"], "--seeds '1,x' is invalid (allowed: comma-separated integers >= 0)"),
    (["--seeds", "1,1"], "--seeds '1,1' is invalid (allowed: distinct integers >= 0)"),
    (["--flat-epochs", "0"], "--flat-epochs 0 is out of range (allowed: 1..100000)"),
    (["--flat-epochs", "5"], "--flat-every 10 is out of range (allowed: 0..--flat-epochs)"),
    (["--seeds", "1,7", "--checkpoints", "a,b,c"],
     "--checkpoints names 3 files for 2 seeds (allowed: one per seed, or one for all)"),
])
def test_bad_flags_are_refused_before_any_work(scan, tmp_path, capsys, flags, message):
    out = tmp_path / "never"
    assert live_handover.main(["--dataset", str(scan / "dataset.npz"), "--output-dir",
                               str(out), *flags]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {message}"]
    assert not out.exists()


def test_a_product_is_placed_by_its_positions_and_scored_on_the_truth(tmp_path):
    """A product cut from a known object at a known corner is found there, and scored as
    the same cut of the truth scored directly; a position moved by half a pixel refuses."""
    rng = np.random.default_rng(0)
    truth = np.exp(1j * rng.uniform(-1, 1, (60, 70))) * rng.uniform(0.5, 1, (60, 70))
    centres = rng.uniform(20, 40, (25, 2))            # (x, y) in the truth's frame
    corner = (7, 11)                                  # (row0, col0) of the product's object
    obj = truth[7:57, 11:66] * 2.0                    # the scale is fitted by the scorer
    path = write_product(tmp_path / "p.h5", obj, np.ones((8, 8), np.complex64),
                         centres - [corner[1], corner[0]], object_pixel_m=1e-8)
    product = read_product(path)
    assert handover.product_origin(product, centres) == corner
    region = (15, 20, 30, 40)
    got = handover.score_on_region(product["object"], corner, truth, region)
    ref = evaluate_reconstruction(truth[15:45, 20:60] * 2.0, truth[15:45, 20:60])
    assert got["phase_corr"] == pytest.approx(ref["phase_correlation"]) and got["phase_corr"] > 0.999
    moved = centres.copy()
    moved[3, 0] += 0.5
    with pytest.raises(ValueError, match=r"^product positions are not the scan's moved by one "
                                         r"whole-pixel shift \(largest departure 0.5"):
        handover.product_origin(product, moved)
    with pytest.raises(ValueError, match=r"does not cover the scored region \(0, 20, 30, 40\)"):
        handover.score_on_region(product["object"], corner, truth, (0, 20, 30, 40))
