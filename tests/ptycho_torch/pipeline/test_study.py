"""Tiny whole studies (seconds each): the per-epoch log, the typed metrics record, --config
round trips, and every way training stops (max_epochs, max_steps, the wall-time cap), the
Poisson loss end to end, and a scan without ground truth."""
from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import grid_lines_torch_runner as runner
from ptycho.config.cli import config_from_argv
from ptycho.config.config import InferenceConfig
from ptycho.config.validation import StudyError
from ptycho.study_metrics import METRIC_KEYS, StudyMetrics

MODEL = dict(N=32, test_stride=8, architecture="fno", fno_width=8, fno_modes=4, fno_blocks=1,
             fno_cnn_blocks=1, batch_size=16, num_threads=1, progress_bar=False)
EPOCHS = 2
EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+)  step (\d+)  train_loss \S+  val_loss \S+  lr \S+  "
                        r"\d+ s$")


def _argv(values: dict) -> list[str]:
    out = []
    for k, v in values.items():
        flag = "--" + k.replace("_", "-")
        out += [flag if v is True else "--no-" + flag[2:]] if isinstance(v, bool) else [flag, str(v)]
    return out


@pytest.fixture(scope="module")
def cli_study(tmp_path_factory, tiny_paths):
    """One 2-epoch study through the CLI entry point, in this process, with the progress bar
    left on (the default) while stderr is not a terminal: the log gets one line per epoch."""
    out = tmp_path_factory.mktemp("cli_study") / "study"
    values = {k: v for k, v in MODEL.items() if k != "progress_bar"}
    argv = [*_argv(values), "--epochs", str(EPOCHS), "--train-npz", str(tiny_paths.train),
            "--test-npz", str(tiny_paths.test), "--output-dir", str(out)]
    loggers = {n: logging.getLogger(n) for n in ("ptycho", "ptycho_torch")}
    saved = {n: (list(lg.handlers), lg.level, lg.propagate) for n, lg in loggers.items()}
    err, std = io.StringIO(), io.StringIO()
    for lg in loggers.values():  # the CLI's logging setup binds a fresh handler to `err`
        lg.handlers.clear()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
            code = runner.main(argv)
    finally:
        for n, (handlers, level, propagate) in saved.items():
            loggers[n].handlers[:] = handlers
            loggers[n].setLevel(level)
            loggers[n].propagate = propagate
    return SimpleNamespace(code=code, err=err.getvalue(), out=std.getvalue(), dir=out, argv=argv,
                           run=out / "runs" / "pinn_fno")


def test_one_log_line_per_epoch_and_the_stop_reason(cli_study):
    assert cli_study.code == 0, cli_study.err[-3000:]
    assert "\r" not in cli_study.err  # no progress-bar redraws in a log
    lines = cli_study.err.splitlines()
    epochs = [EPOCH_LINE.match(ln) for ln in lines]
    found = [m for m in epochs if m]
    assert [(int(m[1]), int(m[2])) for m in found] == [(k, EPOCHS) for k in range(1, EPOCHS + 1)]
    assert len([ln for ln in lines if ln.startswith("epoch ")]) == EPOCHS  # nothing else like it
    steps = [int(m[3]) for m in found]
    assert steps[0] > 0 and steps[1] == 2 * steps[0]
    stop = [ln for ln in lines if ln.startswith("training stopped (")]
    assert stop == [stop[0]] and stop[0].startswith(
        f"training stopped (max_epochs) after {steps[-1]} step(s) = {EPOCHS}.00 epochs")
    assert lines.index(stop[0]) > max(i for i, m in enumerate(epochs) if m)
    assert "pinn_fno" in cli_study.out and "stop: max_epochs" in cli_study.out


def test_metrics_json_is_the_typed_record(cli_study):
    m = json.loads((cli_study.run / "metrics.json").read_text())
    for key in ("mae", "mse", "psnr", "ssim", "frc50"):
        assert len(m[key]) == 2 and all(math.isfinite(v) for v in m[key]), key
    assert set(METRIC_KEYS) <= set(m) and "metrics" not in m  # top level, not nested
    assert set(m["frc"]) >= {"amplitude", "phase"} and len(m["frc"]["amplitude"]) > 2
    assert m["ground_truth"] is True and m["kind"] == "network" and m["model_id"] == "pinn_fno"
    assert m["stop_reason"] == "max_epochs" and m["wall_time_cap_hit"] is False
    assert m["epochs_completed"] == EPOCHS and m["steps_completed"] == EPOCHS * math.ceil(
        m["n_train_patterns"] / MODEL["batch_size"])
    assert math.isfinite(m["data_residual"]["amplitude_mae"])
    # the record round-trips through its JSON form
    rec = StudyMetrics.from_json(m)
    assert rec.to_json() == m
    assert StudyMetrics.from_json(json.loads(json.dumps(rec.to_json()))) == rec
    assert StudyMetrics.from_json({**m, "a_future_key": 1}) == rec  # unknown keys are ignored
    assert rec.value("psnr", 1) == m["psnr"][1] and math.isnan(
        StudyMetrics(model_id="x", kind="network", ground_truth=False).value("mae", 0))
    with pytest.raises(ValueError, match=r"StudyMetrics.kind='net' is not allowed"):
        StudyMetrics(model_id="x", kind="net", ground_truth=False)


def test_config_json_round_trips_through_dash_dash_config(cli_study, tmp_path):
    path = cli_study.run / "config.json"
    ran = config_from_argv(cli_study.argv)
    assert config_from_argv(["--config", str(path)]) == ran
    # an explicit flag wins over the file
    again = config_from_argv(["--config", str(path), "--epochs", "7", "--seed", "3"])
    assert again == ran.replace(epochs=7, seed=3)
    # an unknown key in the file is refused with the closest names
    data = json.loads(path.read_text())
    data["study"]["training"]["learning_rat"] = 0.1
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(StudyError) as exc:
        config_from_argv(["--config", str(bad)])
    assert str(exc.value).startswith(f"config '{bad}': unknown TrainingConfig key 'learning_rat'; "
                                     "did you mean 'learning_rate'")
    assert str(exc.value).endswith("[flag --config]")


# ------------------------------------------------------------------ how training stops
def _study(tmp_path, tiny_paths, **values):
    cfg = runner.from_preset("none", **{**MODEL, "train_npz": str(tiny_paths.train),
                                        "test_npz": str(tiny_paths.test),
                                        "output_dir": str(tmp_path / "s"), **values})
    return cfg, runner.run_grid_lines_torch(cfg)


def _reconstruct_from_checkpoint(run_dir, test_npz, inference: InferenceConfig):
    from ptycho.io import load_dataset
    from ptycho_torch.model import PtychoPINN_Lightning
    from ptycho_torch.engine.inference import reconstruct_test_object
    model = PtychoPINN_Lightning.load_from_checkpoint(run_dir / "model.ckpt", map_location="cpu")
    return reconstruct_test_object(model, load_dataset(test_npz), inference).recon


def test_wall_time_cap_stops_mid_run_and_the_checkpoint_is_the_reconstruction(
        tmp_path, tiny_paths):
    cfg, m = _study(tmp_path, tiny_paths, epochs=500, max_train_minutes=0.001)
    assert m["stop_reason"] == "max_time" and m["wall_time_cap_hit"] is True
    assert 0 < m["steps_completed"] and m["epochs_completed"] < 500
    out = tmp_path / "s"
    saved = np.load(out / "recons" / "pinn_fno" / "recon.npz")["reconstruction"]
    again = _reconstruct_from_checkpoint(out / "runs" / "pinn_fno", tiny_paths.test, cfg.inference)
    np.testing.assert_array_equal(again, saved)  # model.ckpt holds the weights that made it
    # the checkpoint is the state at the stop (not the last epoch end)
    ckpt = torch.load(out / "runs" / "pinn_fno" / "model.ckpt", map_location="cpu",
                      weights_only=True)
    assert int(ckpt["global_step"]) == m["steps_completed"]


def test_max_steps_stops_exactly_and_a_scan_without_ground_truth_is_reconstructed(
        tmp_path, tiny_paths):
    """--max-steps 3 with 50 epochs; --train-npz alone: the training scan (no ground
    truth) is the scored scan, so metrics are null and the data residual is reported."""
    cfg = runner.from_preset("none", **{**MODEL, "train_npz": str(tiny_paths.train),
                                        "output_dir": str(tmp_path / "s"), "epochs": 50,
                                        "max_steps": 3})
    m = runner.run_grid_lines_torch(cfg)
    assert m["stop_reason"] == "max_steps" and m["steps_completed"] == 3
    assert m["wall_time_cap_hit"] is False and m["epochs_completed"] <= 1  # 3 of 5 steps
    assert 0 < m["epochs_trained"] < 1
    assert m["ground_truth"] is False
    assert all(m[k] is None for k in METRIC_KEYS) and m["frc"] is None
    assert math.isfinite(m["data_residual"]["amplitude_mae"])
    run = tmp_path / "s" / "runs" / "pinn_fno"
    data = json.loads((run / "config.json").read_text())["data"]
    assert data["test_npz"] == data["train_npz"] == str(tiny_paths.train)
    assert (tmp_path / "s" / "visuals" / "pinn_fno_reconstruction.png").is_file()
    assert not (tmp_path / "s" / "visuals" / "pinn_fno_frc.png").exists()


def test_poisson_loss_trains_end_to_end_with_capped_patterns(tmp_path, tiny_paths):
    _, m = _study(tmp_path, tiny_paths, loss="poisson", epochs=3, max_train_patterns=32,
                  learning_rate=3e-3, scheduler="none")
    assert m["n_train_patterns"] == 32 and m["steps_completed"] == 3 * 2
    for key in ("mae", "mse", "psnr", "ssim", "frc50"):
        assert all(math.isfinite(v) for v in m[key]), key
    h = json.loads((tmp_path / "s" / "runs" / "pinn_fno" / "history.json").read_text())
    assert len(h["train_loss"]) == 3 and all(math.isfinite(v) for v in h["train_loss"])
    assert h["train_loss"][-1] < h["train_loss"][0], h["train_loss"]
    assert h["val_loss"][-1] < h["val_loss"][0], h["val_loss"]
    assert json.loads((tmp_path / "s" / "runs" / "pinn_fno" / "config.json").read_text())[
        "study"]["training"]["loss"] == "poisson"


def test_progress_bar_only_on_a_terminal_and_the_epoch_line_format():
    from ptycho_torch.engine.training import show_progress_bar
    from ptycho_torch.engine.callbacks import format_epoch_line

    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty
    assert show_progress_bar(True, Stream(True))
    assert not show_progress_bar(True, Stream(False))
    assert not show_progress_bar(False, Stream(True))
    assert not show_progress_bar(True, object())  # no isatty at all
    line = format_epoch_line(2, 50, 2460, 0.0912, 0.0934, 0.002, 121.2)
    assert line == "epoch 3/50  step 2460  train_loss 0.0912  val_loss 0.0934  lr 0.002  121 s"
    assert EPOCH_LINE.match(line)


class _Records(logging.Handler):
    """Collects the records of one logger (whether or not it propagates to the root, which
    a CLI's logging setup earlier in the session may have turned off)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_fit_model_without_progress_bar_logs_one_line_per_epoch(tmp_path, tiny_data):
    """progress_bar=False: exactly one ``epoch k/E  step ...`` record per epoch, then the stop
    reason; the FitResult says how training ended."""
    from ptycho.config.config import DataConfig, ModelConfig, TrainingConfig
    from ptycho_torch.engine.data import input_scale_from
    from ptycho_torch.engine.training import fit_model
    train, _ = tiny_data
    mc = ModelConfig(N=32, architecture="cnn", n_filters_scale=1)
    tc = TrainingConfig(epochs=3, batch_size=16, max_train_patterns=16, scheduler="none")
    dc = DataConfig(input_scale=input_scale_from(train.diffraction))
    logger, handler = logging.getLogger("ptycho_torch.engine.training"), _Records()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        fit = fit_model(mc, tc, dc, train, tmp_path / "work", progress_bar=False)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    messages = [r.getMessage() for r in handler.records]
    found = [EPOCH_LINE.match(msg) for msg in messages]
    assert [(int(m[1]), int(m[2]), int(m[3])) for m in found if m] == [(1, 3, 1), (2, 3, 2), (3, 3, 3)]
    assert not any("\r" in msg for msg in messages)
    stops = [msg for msg in messages if msg.startswith("training stopped (")]
    assert len(stops) == 1 and stops[0].startswith("training stopped (max_epochs) after 3 step(s) "
                                                   "= 3.00 epochs")
    assert messages.index(stops[0]) > max(i for i, m in enumerate(found) if m)
    assert (fit.stop_reason, fit.steps_completed, fit.epochs_completed) == ("max_epochs", 3, 3)
    assert fit.epochs_trained == 3.0 and fit.history["step"] == [1, 2, 3]
    assert fit.n_train == 16 and fit.history["epoch"] == [0, 1, 2] and fit.world_size == 1
    assert fit.accelerator == "cpu" and fit.is_global_zero and fit.resumed_from_epoch is None
    assert fit.checkpoint.is_file()
