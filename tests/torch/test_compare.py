"""grid_lines_compare.py: flags pass through, one dataset, consistent md / json / png, bad input."""
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

import grid_lines_compare as compare
import grid_lines_torch_runner as runner

REPO = Path(__file__).resolve().parents[2]
TINY_FLAGS = ["--N", "32", "--object-size", "64", "--n-lines", "40", "--train-stride", "4",
              "--test-stride", "8", "--n-train-objects", "1", "--n-test-objects", "1",
              "--epochs", "1", "--batch-size", "16", "--fno-width", "8", "--fno-modes", "4",
              "--fno-blocks", "1", "--fno-cnn-blocks", "1", "--no-progress-bar"]


def _md_rows(md: str) -> list[list[str]]:
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


def test_tiny_comparison_writes_consistent_files(tmp_path):
    out = tmp_path / "cmp"
    argv = [*TINY_FLAGS, "--architectures", "fno,hybrid", "--infer-batch-size", "7",
            "--output-dir", str(out)]
    assert compare.main(argv) == 0
    md = (out / "comparison.md").read_text()
    result = json.loads((out / "comparison.json").read_text())
    rows = result["methods"]
    assert [r["method"] for r in rows] == ["pinn_fno", "pinn_hybrid"]
    table = _md_rows(md)
    header, body = table[0], table[1:]
    assert [b[0] for b in body] == ["pinn_fno", "pinn_hybrid"]
    for label in ("amp MAE", "phase MAE", "amp PSNR", "phase PSNR", "amp SSIM", "phase SSIM",
                  "amp FRC50", "phase FRC50", "parameters", "train s", "inference s", "patterns/s"):
        assert label in header, label
    for r, cells in zip(rows, body):
        for key in ("mae", "psnr", "ssim", "frc50"):
            assert len(r["metrics"][key]) == 2 and all(math.isfinite(v) for v in r["metrics"][key])
        # the md shows the json's numbers
        assert float(cells[header.index("amp PSNR")]) == pytest.approx(r["metrics"]["psnr"][0], rel=1e-3)
        assert float(cells[header.index("phase SSIM")]) == pytest.approx(r["metrics"]["ssim"][1], rel=1e-3)
        assert cells[header.index("parameters")] == f"{r['n_parameters']:,}" and r["n_parameters"] > 0
        assert r["train_time_s"] > 0 and r["inference_time_s"] > 0 and r["patterns_per_s"] > 0
        assert r["region"] == result["region"] == [12, 12, 40, 40]
        assert len(r["frc"]["freqs"]) == len(r["frc"]["amplitude"]) > 2
    # one dataset for both runs, and the runner flags reached every run
    assert len(list((out / "datasets").iterdir())) == 1
    for arch in ("fno", "hybrid"):
        cfg = json.loads((out / "runs" / f"pinn_{arch}" / "config.json").read_text())["runner"]
        assert cfg["architecture"] == arch and cfg["infer_batch_size"] == 7 and cfg["fno_width"] == 8
    assert result["settings"]["architectures"] == ["fno", "hybrid"]
    import matplotlib.image as mpimg
    img = mpimg.imread(out / "comparison.png")
    assert img.ndim == 3 and img.shape[0] > 600 and img.shape[1] > 600
    assert float(img[..., :3].std()) > 0.05  # not blank

    # running it again reuses the finished studies (no retraining) and rewrites the files
    def stamps():
        return {a: (out / "runs" / f"pinn_{a}" / "metrics.json").stat().st_mtime_ns
                for a in ("fno", "hybrid")}
    before = stamps()
    assert compare.main(argv) == 0
    assert stamps() == before
    assert json.loads((out / "comparison.json").read_text())["methods"] == json.loads(
        json.dumps(rows))
    # other settings for the same output dir are refused (nothing retrained, nothing lost)
    assert compare.main([*argv, "--learning-rate", "0.5"]) == 2
    assert (out / "runs" / "pinn_fno" / "metrics.json").stat().st_mtime_ns == before["fno"]


def test_every_runner_flag_is_a_comparison_flag():
    dests = {a.dest for a in compare.build_parser()._actions if a.dest != "help"}
    names = {f.name for f in fields(runner.TorchRunnerConfig)}
    assert names <= dests
    assert dests - names == {"architectures", "iterative", "iterative_epochs", "iterative_batch_size"}


def test_flags_and_presets_reach_every_run():
    cc = compare.config_from_argv(["--preset", "quick", "--architectures", "fno,hybrid",
                                   "--fno-width", "24", "--infer-batch-size", "7", "--epochs", "3",
                                   "--no-deterministic", "--loss", "poisson", "--cache-dir", "/tmp/c",
                                   "--iterative", "epie", "--iterative-epochs", "7"])
    assert [c.architecture for c in cc.runs] == ["fno", "hybrid"]
    quick = runner.from_preset("quick", architecture="fno")
    for c in cc.runs:
        assert (c.fno_width, c.infer_batch_size, c.epochs, c.deterministic, c.loss, c.cache_dir) == (
            24, 7, 3, False, "poisson", "/tmp/c")
        assert c.learning_rate == quick.learning_rate and c.preset == "quick"  # from the preset
        assert c.output_dir == "outputs/grid_lines_compare_quick"
    assert cc.iterative == ("epie",) and cc.iterative_epochs == 7
    # apart from the architecture, the runs are identical
    a, b = (runner.asdict(c) for c in cc.runs)
    assert {k for k in a if a[k] != b[k]} == {"architecture"}
    assert compare.config_from_argv([]).runs[0].output_dir == "outputs/grid_lines_compare"
    assert [c.architecture for c in compare.config_from_argv([]).runs] == ["cnn", "fno", "hybrid"]


@pytest.mark.parametrize("args,needle", [
    (["--architectures", "cnn,unet"], "--architectures: 'unet' is not an architecture (allowed: cnn, fno, hybrid)"),
    (["--architectures", "fno,fno"], "lists an architecture twice"),
    (["--architectures", " , "], "--architectures is empty"),
    (["--architecture", "fno"], "use --architectures"),
    (["--iterative", "sirt"], "--iterative: iterative engine 'sirt' is not supported (allowed: lsqml, epie)"),
    (["--iterative-epochs", "0"], "--iterative-epochs=0 is out of range"),
    (["--fno-modes", "40"], "ModelConfig.fno_modes=40 exceeds N//2=32 for N=64"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, args, needle):
    out = tmp_path / "never"
    rc = compare.main([*args, "--output-dir", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert needle in err
    assert not out.exists()


@pytest.mark.parametrize("args,needle", [
    (["--epochs", "many"], "argument --epochs: invalid int value: 'many'"),
    (["--fno-widht", "8"], "unknown flag '--fno-widht'; did you mean --fno-width?"),
])
def test_argparse_errors_are_one_line_too(tmp_path, capsys, args, needle):
    rc = compare.main([*args, "--output-dir", str(tmp_path / "never")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and needle in err
    assert not (tmp_path / "never").exists()


def test_cli_bad_input_has_no_traceback(tmp_path):
    out = tmp_path / "never"
    r = subprocess.run([sys.executable, str(REPO / "scripts/studies/grid_lines_compare.py"),
                        "--architectures", "cnn,unet", "--output-dir", str(out)],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert re.fullmatch(r"error: --architectures: 'unet' is not an architecture .*\n", r.stderr)
    assert not out.exists()
