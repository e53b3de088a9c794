"""ptycho_torch.studies.comparison (grid_lines_compare.py): flags pass through, one dataset, consistent
md / json / png, reuse of finished rows, refusal of changed settings, bad input."""
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ptycho.config.presets import from_preset
from ptycho.config.study_config import StudyConfig
from ptycho_torch.studies import comparison as compare
from torch_fixtures import TINY_STUDY_FLAGS

REPO = Path(__file__).resolve().parents[3]
TINY_FLAGS = TINY_STUDY_FLAGS


def _md_rows(md: str) -> list[list[str]]:
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


def _stamps(out: Path, ids) -> dict:
    return {i: (out / "runs" / i / "metrics.json").stat().st_mtime_ns for i in ids}


@pytest.fixture(scope="module")
def tiny_comparison(tmp_path_factory):
    """One finished two-architecture comparison (trained once for the module)."""
    out = tmp_path_factory.mktemp("cmp") / "out"
    argv = [*TINY_FLAGS, "--architectures", "fno,hybrid", "--infer-batch-size", "7",
            "--output-dir", str(out)]
    assert compare.main(argv) == 0
    return out, argv


def test_tiny_comparison_writes_consistent_files(tiny_comparison):
    out, _ = tiny_comparison
    md = (out / "comparison.md").read_text()
    result = json.loads((out / "comparison.json").read_text())
    rows = result["methods"]
    assert [r["model_id"] for r in rows] == ["pinn_fno", "pinn_hybrid"]
    table = _md_rows(md)
    header, body = table[0], table[1:]
    assert [b[0] for b in body] == ["pinn_fno", "pinn_hybrid"]
    for label in ("amp MAE", "phase MAE", "amp PSNR", "phase PSNR", "amp SSIM", "phase SSIM",
                  "amp FRC50", "phase FRC50", "data residual", "parameters", "train s",
                  "inference s", "patterns/s"):
        assert label in header, label
    for r, cells in zip(rows, body):
        assert r["kind"] == "network" and r["ground_truth"] is True
        for key in ("mae", "psnr", "ssim", "frc50"):  # top-level metric keys, [amp, phase]
            assert len(r[key]) == 2 and all(math.isfinite(v) for v in r[key])
        assert "metrics" not in r
        # the md shows the json's numbers, and the json is each study's metrics.json
        assert float(cells[header.index("amp PSNR")]) == pytest.approx(r["psnr"][0], rel=1e-3)
        assert float(cells[header.index("phase SSIM")]) == pytest.approx(r["ssim"][1], rel=1e-3)
        assert float(cells[header.index("data residual")]) == pytest.approx(
            r["data_residual"]["amplitude_mae"], rel=1e-3)
        assert cells[header.index("parameters")] == f"{r['n_parameters']:,}" and r["n_parameters"] > 0
        assert r["train_time_s"] > 0 and r["inference_time_s"] > 0
        assert r["inference_patterns_per_s"] > 0
        assert r["region"] == result["region"] == [12, 12, 40, 40]
        assert len(r["frc"]["freqs"]) == len(r["frc"]["amplitude"]) > 2
        on_disk = json.loads((out / "runs" / r["model_id"] / "metrics.json").read_text())
        assert on_disk == r
    # one dataset for both runs, and the study flags reached every run
    assert len(list((out / "datasets").iterdir())) == 1
    for arch in ("fno", "hybrid"):
        cfg = StudyConfig.from_dict(
            json.loads((out / "runs" / f"pinn_{arch}" / "config.json").read_text())["study"])
        assert cfg.model.architecture == arch and cfg.inference.infer_batch_size == 7
        assert cfg.model.fno_width == 8
    assert result["settings"]["architectures"] == ["fno", "hybrid"]
    assert "architecture" not in result["settings"]["study"]["model"]
    import matplotlib.image as mpimg
    img = mpimg.imread(out / "comparison.png")
    assert img.ndim == 3 and img.shape[0] > 600 and img.shape[1] > 600
    assert float(img[..., :3].std()) > 0.05  # not blank


def test_second_run_reuses_finished_rows(tiny_comparison, monkeypatch):
    """An interrupted or repeated comparison does not retrain a finished study."""
    out, argv = tiny_comparison
    before = _stamps(out, ("pinn_fno", "pinn_hybrid"))
    rows = json.loads((out / "comparison.json").read_text())["methods"]
    from ptycho_torch.studies import common as study  # where the studies call run_study

    def no_training(cfg):
        raise AssertionError(f"{cfg.model_id} was retrained")
    monkeypatch.setattr(study, "run_study", no_training)
    assert compare.main(argv) == 0
    assert _stamps(out, ("pinn_fno", "pinn_hybrid")) == before
    assert json.loads((out / "comparison.json").read_text())["methods"] == rows
    # settings that do not change the numbers do not prevent reuse, and still apply: the
    # thread count holds for what runs after reused studies (Pty-chi rows)
    import torch
    threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n))
    calls = []
    assert compare.main([*argv, "--num-threads", "1", "--resume"]) == 0
    assert calls == [1] and torch.get_num_threads() == threads
    assert _stamps(out, ("pinn_fno", "pinn_hybrid")) == before


def test_interrupted_comparison_runs_only_the_missing_rows(tiny_comparison, tmp_path, monkeypatch):
    """A comparison cut short after its first study: the rerun trains only the second."""
    out, argv = tiny_comparison
    partial = tmp_path / "partial"
    partial.mkdir()
    import shutil
    for sub in ("datasets", "runs/pinn_fno", "recons/pinn_fno"):
        shutil.copytree(out / sub, partial / sub)
    cfg = StudyConfig.from_dict(json.loads((partial / "runs/pinn_fno/config.json").read_text())["study"])
    (partial / "runs/pinn_fno/config.json").write_text(json.dumps({"study": cfg.replace(
        output_dir=str(partial)).to_dict()}))
    before = _stamps(partial, ("pinn_fno",))
    from ptycho_torch.studies import common as study  # where the studies call run_study
    trained = []
    real = study.run_study

    def counting(c):
        trained.append(c.model_id)
        return real(c)
    monkeypatch.setattr(study, "run_study", counting)
    rc = compare.main([*argv[:-1], str(partial)])
    assert rc == 0 and trained == ["pinn_hybrid"]
    assert _stamps(partial, ("pinn_fno",)) == before
    result = json.loads((partial / "comparison.json").read_text())
    assert [r["model_id"] for r in result["methods"]] == ["pinn_fno", "pinn_hybrid"]


def test_changed_settings_are_refused_without_overwrite(tiny_comparison, capsys):
    out, argv = tiny_comparison
    before = _stamps(out, ("pinn_fno", "pinn_hybrid"))
    capsys.readouterr()
    assert compare.main([*argv, "--learning-rate", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already holds a finished study of pinn_fno" in err
    assert "learning_rate=0.5" in err and "--overwrite" in err
    assert _stamps(out, ("pinn_fno", "pinn_hybrid")) == before  # nothing retrained, nothing lost


def test_every_study_flag_is_a_comparison_flag():
    from ptycho.config.study_config import flat_owner
    dests = {a.dest for a in compare.build_parser()._actions if a.dest != "help"}
    names = set(flat_owner()) - {"architecture"}
    assert names <= dests
    assert dests - names == {"config", "architectures", "iterative", "iterative_epochs",
                             "iterative_batch_size", "refine", "refine_epochs", "reuse_models",
                             "seeds"}


def test_flags_and_presets_reach_every_run():
    cc = compare.config_from_argv(["--preset", "quick", "--architectures", "fno,hybrid",
                                   "--fno-width", "24", "--infer-batch-size", "7", "--epochs", "3",
                                   "--no-deterministic", "--loss", "poisson", "--cache-dir", "/tmp/c",
                                   "--iterative", "epie", "--iterative-epochs", "7"])
    assert [c.model.architecture for c in cc.studies] == ["fno", "hybrid"]
    quick = from_preset("quick", architecture="fno")
    for c in cc.studies:
        assert (c.model.fno_width, c.inference.infer_batch_size, c.training.epochs,
                c.training.deterministic, c.training.loss, c.run.cache_dir) == (
            24, 7, 3, False, "poisson", "/tmp/c")
        assert c.training.learning_rate == quick.training.learning_rate  # from the preset
        assert c.run.preset == "quick" and c.run.output_dir == "outputs/grid_lines_compare_quick"
    assert cc.methods.iterative == ("epie",) and cc.methods.iterative_epochs == 7
    # apart from the architecture, the runs are identical
    a, b = (c.flat() for c in cc.studies)
    assert {k for k in a if a[k] != b[k]} == {"architecture"}
    default = compare.config_from_argv([])
    assert default.base.run.output_dir == "outputs/grid_lines_compare"
    assert [c.model.architecture for c in default.studies] == ["cnn", "fno", "hybrid"]
    assert default.methods.iterative == ()


@pytest.mark.parametrize("args,needle", [
    (["--architectures", "cnn,unet"],
     "--architectures: 'unet' is not an architecture (allowed: cnn, fno, hybrid)"),
    (["--architectures", "fno,fno"], "lists an architecture twice"),
    (["--architectures", " , "], "--architectures is empty"),
    (["--architecture", "fno"], "unknown flag '--architecture'; did you mean --architectures?"),
    (["--iterative", "sirt"],
     "--iterative: iterative engine 'sirt' is not supported (allowed: lsqml, lsqml-poisson, epie)"),
    (["--refine", "dm"],
     "--refine: iterative engine 'dm' is not supported (allowed: lsqml, lsqml-poisson, epie)"),
    (["--refine-epochs", "0"], "--refine-epochs=0 is out of range (allowed: >= 1)"),
    (["--iterative-epochs", "0"], "--iterative-epochs=0 is out of range"),
    (["--fno-modes", "40"], "ModelConfig.fno_modes=40 exceeds N//2=32 for N=64"),
    (["--epochs", "many"], "argument --epochs: invalid int value: 'many'"),
    (["--fno-widht", "8"], "unknown flag '--fno-widht'; did you mean --fno-width?"),
    (["--seed", "3", "--seeds", "1,2"], "error: --seed and --seeds were both given (allowed: "
     "one of them; --seeds sets the seed of each comparison)"),
    (["--seeds", "4"], "error: --seeds '4' gives 1 seed(s) (allowed: two or more, e.g. 1,7,42)"),
    (["--reuse-models", "nowhere/runs/x/model.ckpt"], "error: --reuse-models: checkpoint "
     "'nowhere/runs/x/model.ckpt' does not exist (expected a study's runs/<model_id>/model.ckpt)"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, args, needle):
    out = tmp_path / "never"
    rc = compare.main([*args, "--output-dir", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert needle in err
    assert not out.exists()


def test_reused_model_reconstructs_another_scan_without_training(tiny_comparison, tmp_path,
                                                                monkeypatch, capsys):
    """--reuse-models: the tiny comparison's FNO applied to a scan at another dose is a row
    '<run>@reused' scored like a network row (equal to what the model gives on it), with no
    training; run again, it is reused; a model of another N is refused before anything runs."""
    from ptycho_torch.studies import methods
    first, _ = tiny_comparison
    ckpt = first / "runs" / "pinn_fno" / "model.ckpt"
    out = tmp_path / "out"
    argv = [*TINY_FLAGS, "--architectures", "cnn", "--nphotons", "1e6", "--reuse-models",
            str(ckpt), "--output-dir", str(out)]
    assert compare.main(argv) == 0
    rows = {r["model_id"]: r for r in json.loads((out / "comparison.json").read_text())["methods"]}
    assert list(rows) == ["pinn_cnn", "pinn_fno@reused"]
    reused = rows["pinn_fno@reused"]
    own = json.loads((first / "runs" / "pinn_fno" / "metrics.json").read_text())
    assert reused["kind"] == "network" and reused["architecture"] == "fno"
    assert reused["train_time_s"] is None and reused["n_parameters"] == own["n_parameters"]
    assert reused["ground_truth"] and all(math.isfinite(v) for v in reused["ssim"])
    assert reused["region"] == rows["pinn_cnn"]["region"]
    assert reused["data_residual"]["amplitude_mae"] > 0 and reused["patch_residual"]
    assert reused["ssim"] != own["ssim"]  # another scan (1e6 photons, not the default 1e9)
    assert (out / "recons" / "pinn_fno@reused" / "recon.npz").is_file()
    assert "pinn_fno@reused" in (out / "comparison.md").read_text()

    def no_rerun(*a, **k):
        raise AssertionError("a finished reused row was recomputed")
    monkeypatch.setattr(methods, "reconstruct_test_object", no_rerun)
    assert compare.main(argv) == 0
    capsys.readouterr()
    never = tmp_path / "never"
    rc = compare.main([*TINY_FLAGS, "--N", "64", "--object-size", "128", "--reuse-models",
                       str(ckpt), "--output-dir", str(never)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == (f"error: --reuse-models: checkpoint '{ckpt}' is a model of "
                               "N=32, gridsize=1 (expected N=64, gridsize=1, the comparison's)")
    assert not never.exists()


def test_seeds_run_one_comparison_per_seed_and_summarise_each_method(tmp_path):
    out = tmp_path / "out"
    argv = [*TINY_FLAGS, "--architectures", "cnn", "--seeds", "3,5", "--output-dir", str(out)]
    assert compare.main(argv) == 0
    per_seed = {s: json.loads((out / f"seed_{s}" / "comparison.json").read_text())
                for s in (3, 5)}
    for s, result in per_seed.items():
        assert result["settings"]["study"]["training"]["seed"] == s
    ssim = {s: r["methods"][0]["ssim"][0] for s, r in per_seed.items()}
    assert ssim[3] != ssim[5]  # the seed reached the training
    # the data do not depend on the seed: simulated once, into one cache for every seed
    assert len(list((out / "datasets").glob("*/test.npz"))) == 1
    assert not list(out.glob("seed_*/datasets"))
    summary = json.loads((out / "seeds.json").read_text())["summary"]
    amp = summary["pinn_cnn"]["amp SSIM"]
    assert amp["per_seed"] == {"3": ssim[3], "5": ssim[5]}
    assert amp["mean"] == pytest.approx((ssim[3] + ssim[5]) / 2)
    assert (amp["min"], amp["max"]) == (min(ssim.values()), max(ssim.values()))
    rows = _md_rows((out / "seeds.md").read_text())
    assert rows[0][:3] == ["method", "amp SSIM", "phase SSIM"] and rows[1][0] == "pinn_cnn"
    assert rows[1][1] == f"{amp['mean']:.4g} ({amp['min']:.4g}..{amp['max']:.4g})"


def test_cli_script_is_thin_and_refuses_without_traceback(tmp_path):
    script = REPO / "scripts/studies/grid_lines_compare.py"
    assert len(script.read_text().splitlines()) < 80
    out = tmp_path / "never"
    r = subprocess.run([sys.executable, str(script), "--architectures", "cnn,unet",
                        "--output-dir", str(out)],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert re.fullmatch(r"error: --architectures: 'unet' is not an architecture .*\n", r.stderr)
    assert not out.exists()


@pytest.mark.iterative
def test_iterative_rows_are_study_metrics_records(tmp_path):
    from ptycho_torch.ptychi import import_ptychi
    import_ptychi()
    out = tmp_path / "cmp"
    argv = [*TINY_FLAGS, "--architectures", "fno", "--max-train-patterns", "16",
            "--iterative", "lsqml,epie", "--iterative-epochs", "5", "--refine", "lsqml",
            "--refine-epochs", "3", "--output-dir", str(out)]
    assert compare.main(argv) == 0
    result = json.loads((out / "comparison.json").read_text())
    assert [r["model_id"] for r in result["methods"]] == ["pinn_fno", "ptychi_lsqml", "ptychi_epie",
                                                          "pinn_fno+lsqml"]
    md = (out / "comparison.md").read_text()
    assert all(f"| {r['model_id']} |" in md for r in result["methods"])
    refined = result["methods"][3]
    assert refined["kind"] == "refined" and refined["initialized_from"] == "pinn_fno"
    assert refined["epochs_completed"] == 3 and refined["engine"] == "lsqml"
    assert refined["n_parameters"] == result["methods"][0]["n_parameters"]
    assert refined["region"] == result["region"]
    assert (out / "recons" / "pinn_fno+lsqml" / "recon.npz").is_file()
    assert result["settings"]["refine"] == ["lsqml"] and result["settings"]["refine_epochs"] == 3
    for r in result["methods"][1:3]:
        assert r["kind"] == "iterative" and r["n_parameters"] is None
        assert r["epochs_completed"] == 5 and r["engine"] == r["model_id"].split("_")[1]
        assert r["region"] == result["region"]
        assert all(math.isfinite(v) for k in ("mae", "psnr", "ssim", "frc50") for v in r[k])
        assert 0 < r["data_residual"]["amplitude_mae"] < 1
        assert r["inference_time_s"] > 0 and r["inference_patterns_per_s"] > 0
        assert (out / "recons" / r["model_id"] / "recon.npz").is_file()
        assert json.loads((out / "runs" / r["model_id"] / "metrics.json").read_text()) == r
    # a second run reuses the Pty-chi rows too; other epochs are refused
    ids = ("pinn_fno", "ptychi_lsqml", "ptychi_epie", "pinn_fno+lsqml")
    before = _stamps(out, ids)
    assert compare.main(argv) == 0
    assert _stamps(out, ids) == before
    assert compare.main([*argv, "--iterative-epochs", "6"]) == 2
    assert _stamps(out, ids) == before


def test_settings_line_says_a_file_scan_has_its_own_dose():
    from ptycho.config.study_config import StudyConfig
    from ptycho_torch.studies.common import settings_line
    simulated = settings_line(StudyConfig.from_flat({"nphotons": 1e4}))
    assert "nphotons=10000," in simulated and "probe_update=none" in simulated
    from_file = settings_line(StudyConfig.from_flat({"train_npz": "scan.npz", "nphotons": 1e4}))
    assert "nphotons=the file's," in from_file and "10000" not in from_file
