"""The online adaptation study's own arithmetic: the true object's window under a product
(positions in metres about the product's centre), run folders, the seed summary, refusals."""
from __future__ import annotations

import numpy as np
import pytest

from ptycho.datagen.grid_lines import make_object
from ptycho.formats.ptychodus_product import write_product
from ptycho_torch.studies import live_adapt


@pytest.fixture()
def truth():
    obj = make_object(96, 30, np.random.default_rng(2))
    true_xy = np.array([[40.0, 35.5], [52.25, 41.0], [47.0, 60.0]])
    return obj, true_xy


def test_the_window_under_the_product_scores_perfectly_and_a_shifted_one_does_not(truth,
                                                                                  tmp_path):
    obj, true_xy = truth
    r0, c0, h, w = 20, 17, 50, 44
    corner = np.array([c0, r0], np.float64)
    write_product(tmp_path / "p.h5", obj[r0:r0 + h, c0:c0 + w], np.ones((8, 8), np.complex64),
                  true_xy - corner, 2e-8)
    got = live_adapt.truth_score(tmp_path / "p.h5", obj, true_xy)
    assert got["ssim"][0] == pytest.approx(1.0) and got["psnr"][0] == float("inf")
    write_product(tmp_path / "q.h5", obj[r0 + 3:r0 + 3 + h, c0:c0 + w],
                  np.ones((8, 8), np.complex64), true_xy - corner, 2e-8)
    assert live_adapt.truth_score(tmp_path / "q.h5", obj, true_xy)["ssim"][0] < 0.9


def test_run_folders_and_the_summary_over_seeds():
    assert live_adapt._slug("--adapt-lr 1e-3 --adapt-every 256") == "adapt_lr_1e-3_every_256"
    rows = [{"probe": "file", "run": "frozen", "residual": r, "ssim": [s, 0.5],
             "psnr": [20.0, 15.0], "frames_per_s": 100.0, "adapt_seconds": 0.0}
            for r, s in ((1.0, 0.25), (2.0, 0.75), (4.5, 0.5))]
    line = live_adapt.table(rows).splitlines()[2]
    assert line.startswith("| file | `frozen` | 2.5 (1..4.5) | 0.5 (0.25..0.75) | 0.5 (0.5..0.5) |")


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "1,x"], "error: --seeds '1,x' (allowed: comma-separated integers)"),
    (["--from", "none.npz"], "error: --from 'none.npz' does not exist (allowed: an NPZ with "
                             "objectGuess, probeGuess, xcoords, ycoords)"),
    (["--probes", "file,other"], "error: --probes 'file,other' (allowed: file, model, "
                                 "comma-separated)"),
])
def test_bad_arguments_are_refused_in_one_line(argv, message, tmp_path, capsys):
    assert live_adapt.main([*argv, "--output-dir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [message]
    assert not (tmp_path / "out").exists()
