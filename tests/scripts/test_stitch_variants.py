"""scripts/studies/stitch_variants.py on a finished tiny study: its row for the study's own
stitching options gives the scores the study wrote to metrics.json."""
import json

from ptycho.study_metrics import format_number
from ptycho_torch.cli import study_main
from torch_fixtures import load_repo_file

TINY = ["--N", "32", "--object-size", "64", "--n-lines", "40", "--train-stride", "4",
        "--test-stride", "8", "--n-train-objects", "1", "--n-test-objects", "1",
        "--epochs", "1", "--batch-size", "16", "--fno-width", "8", "--fno-modes", "4",
        "--fno-blocks", "1", "--fno-cnn-blocks", "1", "--no-progress-bar",
        "--architecture", "fno", "--num-threads", "1"]


def test_the_default_row_scores_what_the_study_scored(tmp_path, capsys):
    out = tmp_path / "study"
    assert study_main([*TINY, "--output-dir", str(out)]) == 0
    run = out / "runs" / "pinn_fno"
    m = json.loads((run / "metrics.json").read_text())
    test_npz = json.loads((run / "config.json").read_text())["data"]["test_npz"]
    capsys.readouterr()
    script = load_repo_file("scripts/studies/stitch_variants.py")
    assert script.main(["--checkpoint", str(run / "model.ckpt"), "--data", test_npz,
                        "--crops", "8,16"]) == 0
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    header, rows = rows[0], rows[1:]
    assert header[:4] == ["stitch", "crop", "subpixel", "align phase"]
    # tiles, then crops 8 and 16 each with two sub-pixel modes and with/without alignment
    assert len(rows) == 1 + 2 * 2 * 2 and rows[0][0] == "tiles"
    # the study's defaults: positions, crop N/2 = 16, Fourier sub-pixel shifts, no alignment
    default = [r for r in rows if r[:4] == ["positions", "16", "fourier", "False"]]
    assert len(default) == 1
    assert default[0][4:7] == [format_number(m["ssim"][0], 3), format_number(m["psnr"][0], 4),
                               format_number(m["psnr"][1], 4)]
