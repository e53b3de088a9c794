"""Learning curve: one training run scored at increasing budgets from weight snapshots."""
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import StudyError
from ptycho.study_metrics import StudyMetrics
from ptycho_torch.studies import learning_curve as lcm

REPO = Path(__file__).resolve().parents[3]
TINY = ["--N", "32", "--object-size", "64", "--n-lines", "40", "--train-stride", "4",
        "--test-stride", "8", "--n-train-objects", "1", "--n-test-objects", "1",
        "--batch-size", "16", "--fno-width", "8", "--fno-modes", "4", "--fno-blocks", "1",
        "--fno-cnn-blocks", "1", "--no-progress-bar", "--num-threads", "1"]


@pytest.fixture(scope="module")
def reference_json(tmp_path_factory):
    m = StudyMetrics(model_id="ptychi_lsqml", kind="iterative", ground_truth=True,
                     psnr=[60.0, 35.0], ssim=[0.999, 0.998], frc50=[0.5, 0.5],
                     phase_correlation=0.99, data_residual={"amplitude_mae": 0.01},
                     inference_time_s=30.0)
    path = tmp_path_factory.mktemp("ref") / "metrics.json"
    path.write_text(json.dumps(m.to_json()))
    return path


@pytest.fixture(scope="module")
def curve(tmp_path_factory, reference_json):
    """One tiny learning curve: --budget-steps 2,4,8 (deterministic, 1 thread)."""
    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("lc")
    try:
        lc = lcm.config_from_argv(TINY + ["--budget-steps", "2,4,8", "--output-dir", str(out),
                                          "--reference-json", str(reference_json)])
        yield lc, lcm.run_learning_curve(lc)
    finally:
        torch.set_num_threads(threads)


def test_writes_json_and_png_with_a_point_per_budget(curve):
    lc, res = curve
    assert lc.kind == "steps" and lc.budgets == (2, 4, 8)
    assert res.json_path == lc.output_dir / "learning_curve.json"
    data = json.loads(res.json_path.read_text())
    assert data["budget_kind"] == "steps" and data["budgets"] == [2, 4, 8]
    assert data["budgets_not_reached"] == []
    assert [p["steps"] for p in data["points"]] == [2, 4, 8]  # exactly the budgets
    assert [p["budget"] for p in data["points"]] == [2, 4, 8]
    minutes = [p["minutes"] for p in data["points"]]
    assert minutes == sorted(minutes) and minutes[0] > 0
    epochs = [p["epochs"] for p in data["points"]]
    steps_per_epoch = data["training"]["steps_per_epoch"]
    assert epochs == pytest.approx([s / steps_per_epoch for s in (2, 4, 8)])
    for p in data["points"]:
        for key in ("amp_ssim", "amp_psnr", "phase_psnr", "phase_ssim", "phase_correlation",
                    "amp_frc50", "phase_frc50", "data_residual"):
            assert isinstance(p[key], float), key
        assert 0 < p["data_residual"] < 10 and -1 <= p["amp_ssim"] <= 1
    assert data["training"]["stop_reason"] == "max_steps"
    assert data["training"]["steps_completed"] == 8
    study = StudyConfig.from_dict(data["config"]["study"])
    assert study.training.max_steps == 8 and study.training.max_train_minutes == 0
    assert study.training.epochs == -(-8 // steps_per_epoch)
    m = data["machine"]
    assert m["torch_threads"] == 1 and m["cpu_count"] >= 1 and m["platform"]
    [ref] = data["references"]
    assert ref["model_id"] == "ptychi_lsqml" and ref["amp_ssim"] == pytest.approx(0.999)
    assert res.png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(lc.output_dir.glob(".*.tmp-*"))  # atomic writes leave no temporaries


@pytest.mark.parametrize("k", [4, 8])
def test_snapshot_equals_the_weights_of_a_run_stopped_at_the_budget(curve, tmp_path, k):
    """The snapshot at budget k is bit-identical to a run trained with max_steps=k."""
    from ptycho_torch.pipeline.study import check_data
    from ptycho.inputs import load_study_data
    from ptycho_torch.engine.training import fit_model
    _, res = curve
    snap = next(s for s in res.snapshots if s.budget == k)
    assert snap.steps == k
    cfg = StudyConfig.from_dict(res.result["config"]["study"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train, test, _ = load_study_data(cfg)
        data_config = check_data(cfg, train, test)
        tc = dataclasses.replace(cfg.training, max_steps=k)
        fit = fit_model(cfg.model, tc, data_config, train, tmp_path / "work",
                        progress_bar=False)
    finally:
        torch.set_num_threads(threads)
    assert fit.steps_completed == k
    ref = {key: v.detach().cpu() for key, v in fit.model.generator.state_dict().items()}
    assert ref.keys() == snap.state.keys()
    for key, v in ref.items():
        assert torch.equal(v, snap.state[key]), key
    # and the snapshots differ from each other (training moved the weights)
    first = res.snapshots[0].state
    assert any(not torch.equal(first[key], snap.state[key]) for key in first)


@pytest.mark.parametrize("value, words", [
    ("", "is empty"), (" , ", "is empty"), ("8,4,2", "not strictly increasing"),
    ("2,2,4", "not strictly increasing"), ("0,1", "not positive"), ("1,x", "'x'"),
])
def test_refuses_bad_budget_lists_in_one_line(tmp_path, capsys, value, words):
    out = tmp_path / "out"
    rc = lcm.main(TINY + ["--budget-steps", value, "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("error: --budget-steps") and words in err
    assert not out.exists()


@pytest.mark.parametrize("argv, words", [
    ([], "--budget-minutes"),                                           # no budget
    (["--budget-steps", "2", "--budget-epochs", "1"], "not allowed with"),
    (["--budget-steps", "2", "--epochs", "3"], "--epochs is set by the learning curve"),
    (["--budget-minutes", "1", "--max-train-minutes", "3"], "--max-train-minutes is set"),
    (["--budget-steps", "2", "--resume"], "--resume"),
    (["--budget-steps", "2", "--early-stopping-patience", "2"], "--early-stopping-patience"),
    (["--budget-steps", "2", "--lsqml-epochs", "0"], "--lsqml-epochs=0"),
    (["--budget-steps", "2", "--fno-widht", "8"], "did you mean --fno-width"),
])
def test_refuses_other_bad_input(tmp_path, capsys, argv, words):
    out = tmp_path / "out"
    rc = lcm.main(TINY + argv + ["--output-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: ") and words in err
    assert not out.exists()


def test_refuses_a_reference_without_scores_before_training(tmp_path, capsys):
    ref = tmp_path / "metrics.json"
    ref.write_text(json.dumps(StudyMetrics(model_id="x", kind="network",
                                           ground_truth=False).to_json()))
    out = tmp_path / "out"
    rc = lcm.main(TINY + ["--budget-steps", "2", "--output-dir", str(out),
                          "--reference-json", str(ref)])
    err = capsys.readouterr().err
    assert rc == 2 and "key 'ssim' is null" in err and "[flag --reference-json]" in err
    assert not out.exists()


def test_refuses_to_replace_a_finished_curve_without_overwrite(tmp_path, capsys):
    (tmp_path / "learning_curve.json").write_text("{}")
    rc = lcm.main(TINY + ["--budget-steps", "2", "--output-dir", str(tmp_path)])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err


def test_script_refuses_an_unsorted_list():
    proc = subprocess.run([sys.executable, str(REPO / "scripts/studies/learning_curve.py"),
                           "--budget-minutes", "4,2,1"], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --budget-minutes='4,2,1' is not strictly increasing (allowed: positive "
        "numbers in increasing order, e.g. 1,2,4,8)"]


def test_parse_budgets():
    assert lcm.parse_budgets("0.5, 1,2", "minutes") == (0.5, 1.0, 2.0)
    assert lcm.parse_budgets("1,2,4", "epochs") == (1, 2, 4)
    with pytest.raises(StudyError, match="whole number"):
        lcm.parse_budgets("1.5", "steps")


def test_training_budget_trains_until_the_largest_budget():
    assert lcm.training_budget("steps", (2, 4, 8), steps_per_epoch=5) == dict(
        epochs=2, max_steps=8, max_train_minutes=0.0)
    assert lcm.training_budget("epochs", (1, 2, 4)) == dict(epochs=4, max_steps=0,
                                                           max_train_minutes=0.0)
    b = lcm.training_budget("minutes", (1.0, 64.0))
    assert b["max_steps"] == 0 and b["max_train_minutes"] == 0 and b["epochs"] >= 1000


def _fake(step=0, epoch=0):
    return SimpleNamespace(global_step=step, current_epoch=epoch, num_training_batches=4,
                           should_stop=False)


def test_minute_budgets_snapshot_when_crossed_and_stop_after_the_last():
    module = SimpleNamespace(generator=torch.nn.Linear(2, 2))
    cb = lcm.BudgetSnapshots("minutes", (0.5, 1.0, 2.0))
    trainer = _fake()
    cb.on_fit_start(trainer, module)
    cb.on_train_batch_end(_fake(step=1), module, None, None, 0)
    assert cb.snapshots == []                      # no budget reached yet
    cb._t0 = time.perf_counter() - 70.0            # 70 s of training: 0.5 and 1 min crossed
    trainer = _fake(step=3, epoch=1)
    cb.on_train_batch_end(trainer, module, None, None, 1)
    assert [s.budget for s in cb.snapshots] == [0.5, 1.0]
    assert all(s.steps == 3 and s.epochs == 1.5 and s.minutes >= 70 / 60 for s in cb.snapshots)
    assert not trainer.should_stop
    cb._t0 = time.perf_counter() - 130.0 - cb.snapshot_s
    trainer = _fake(step=9, epoch=2)
    cb.on_train_batch_end(trainer, module, None, None, 0)
    assert [s.budget for s in cb.snapshots] == [0.5, 1.0, 2.0] and trainer.should_stop
    state = cb.snapshots[0].state                  # copies, not views of the live weights
    with torch.no_grad():
        module.generator.weight.add_(1.0)
    assert not torch.equal(state["weight"], module.generator.weight)


def test_epoch_budgets_snapshot_at_epoch_end():
    module = SimpleNamespace(generator=torch.nn.Linear(2, 2))
    cb = lcm.BudgetSnapshots("epochs", (1, 3))
    cb.on_fit_start(_fake(), module)
    cb.on_train_batch_end(_fake(step=1), module, None, None, 0)
    for epoch in range(3):
        cb.on_train_epoch_end(_fake(step=4 * (epoch + 1), epoch=epoch), module)
    assert [(s.budget, s.epochs, s.steps) for s in cb.snapshots] == [(1, 1.0, 4), (3, 3.0, 12)]


# ------------------------------------------------------------------ over seeds
def test_seeds_run_one_curve_per_seed_then_reuse_them(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    argv = TINY + ["--budget-steps", "2,4", "--seeds", "3,5", "--output-dir", str(out)]
    threads = torch.get_num_threads()
    try:
        assert lcm.main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    assert "learning curve over seeds:" in capsys.readouterr().out
    curves = {s: json.loads((out / f"seed_{s}" / "learning_curve.json").read_text())
              for s in (3, 5)}
    assert {s: c["config"]["study"]["training"]["seed"] for s, c in curves.items()} == {3: 3, 5: 5}
    assert len(list((out / "datasets").glob("*/test.npz"))) == 1   # one cache for both seeds
    ssim = {s: [p["amp_ssim"] for p in c["points"]] for s, c in curves.items()}
    assert ssim[3] != ssim[5]
    summary = json.loads((out / "seeds.json").read_text())
    amp = summary["summary"]["amp_ssim"]
    assert amp["per_seed"] == {"3": ssim[3], "5": ssim[5]}
    for i in range(2):
        assert amp["mean"][i] == pytest.approx((ssim[3][i] + ssim[5][i]) / 2)
        assert (amp["min"][i], amp["max"][i]) == (min(ssim[3][i], ssim[5][i]),
                                                  max(ssim[3][i], ssim[5][i]))
    md = (out / "seeds.md").read_text()
    assert f"| 2 steps | {amp['mean'][0]:.4g} ({amp['min'][0]:.4g}..{amp['max'][0]:.4g}) |" in md
    assert (out / "learning_curve_seeds.png").stat().st_size > 10000
    # the same command reuses both curves; other settings are refused before training
    from ptycho_torch.studies import learning_curve as pkg

    def no_training(lc):
        raise AssertionError(f"{lc.output_dir} was retrained")
    monkeypatch.setattr(pkg, "run_learning_curve", no_training)
    assert lcm.main(argv) == 0
    capsys.readouterr()
    assert lcm.main([*argv, "--learning-rate", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "already holds a learning curve with other settings" in err


@pytest.mark.parametrize("args,needle", [
    (["--seed", "1", "--seeds", "1,2"], "--seed and --seeds were both given"),
    (["--seeds", "4"], "--seeds '4' gives 1 seed(s) (allowed: two or more"),
])
def test_seeds_refusals(tmp_path, capsys, args, needle):
    out = tmp_path / "never"
    assert lcm.main(TINY + ["--budget-steps", "2", *args, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and not out.exists()
