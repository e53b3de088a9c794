"""Kill a study with SIGKILL after its first checkpoint, then --resume it to the end.

The resumed study must finish every artifact, keep the per-epoch history of the killed
session (HistoryCallback state is saved in the checkpoints) and never retrain an epoch:
history epochs are exactly 0..E-1, the epochs up to the checkpoint's ended before the
kill and the rest after it. And it must be the uninterrupted run: a training stopped by a
crash after epoch k and resumed to E ends with the same weights and history, bit for bit
on CPU, as one that ran E epochs (the data order is a function of seed and epoch only).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import lightning as L
import pytest
import torch

from ptycho.config.config import ModelConfig, TrainingConfig
from ptycho.io import load_dataset
from ptycho_torch.config_factory import data_config_from
from ptycho_torch.engine.training import fit_model

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "studies" / "grid_lines_torch_runner.py"
EPOCHS = 6


def _cmd(tiny_paths, out, *extra):
    return [sys.executable, str(SCRIPT), "--N", "32", "--test-stride", "8", "--architecture", "fno",
            "--fno-width", "8", "--fno-modes", "4", "--fno-blocks", "1", "--fno-cnn-blocks", "1",
            "--batch-size", "4", "--epochs", str(EPOCHS), "--num-threads", "1",
            "--no-progress-bar", "--train-npz", str(tiny_paths.train),
            "--test-npz", str(tiny_paths.test), "--output-dir", str(out), *extra]


def test_sigkill_then_resume_finishes_without_repeating_epochs(tmp_path, tiny_paths):
    out = tmp_path / "study"
    last = out / ".work" / "pinn_fno" / "checkpoints" / "last.ckpt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "first.log", "wb")
    proc = subprocess.Popen(_cmd(tiny_paths, out), stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 120
    try:
        while not last.exists():
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.time() < deadline, "no checkpoint within 120 s"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    killed_at = time.time()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "runs" / "pinn_fno" / "metrics.json").exists()
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    k = int(ckpt["epoch"])
    assert 0 <= k < EPOCHS - 1, "the run was killed too late to test resuming"
    assert [r["epoch"] for r in ckpt["callbacks"]["HistoryCallback"]["rows"]] == list(range(k + 1))

    r = subprocess.run(_cmd(tiny_paths, out, "--resume"), capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    run = out / "runs" / "pinn_fno"
    for p in (run / "metrics.json", run / "history.json", run / "config.json", run / "model.ckpt",
              out / "recons" / "pinn_fno" / "recon.npz"):
        assert p.is_file() and p.stat().st_size > 0, p
    m = json.loads((run / "metrics.json").read_text())
    assert m["resumed_from_epoch"] == k and m["epochs_completed"] == EPOCHS
    assert m["stop_reason"] == "max_epochs"
    h = json.loads((run / "history.json").read_text())
    assert h["epoch"] == list(range(EPOCHS))  # strictly increasing, no duplicates, no gaps
    assert all(t < killed_at for t in h["time_s"][: k + 1]), "epochs before the kill were retrained"
    assert all(t > killed_at for t in h["time_s"][k + 1:])
    # model.ckpt is the final state saved after fit (the weights the reconstruction used):
    # Lightning's epoch counter then equals the number of completed epochs
    assert int(torch.load(run / "model.ckpt", map_location="cpu", weights_only=True)["epoch"]) == EPOCHS
    assert not list(out.rglob(".*.tmp-*"))


class _CrashError(Exception):
    pass


class _CrashAtEpoch(L.Callback):
    """Raise (as a crash would stop the process) when epoch ``k`` starts: ``last.ckpt`` then
    holds the end of epoch k - 1."""

    def __init__(self, k: int) -> None:
        self.k = k

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.k:
            raise _CrashError(f"stopped before epoch {self.k}")


class _SamplerEpochs(L.Callback):
    """The epoch the training sampler was set to as each epoch starts."""

    def __init__(self) -> None:
        self.seen = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.seen.append(getattr(trainer.train_dataloader.sampler, "epoch", None))


def _without_times(history: dict) -> dict:
    return {k: v for k, v in history.items() if k != "time_s"}


def test_a_resumed_training_is_the_uninterrupted_one(tmp_path, tiny_paths):
    """E epochs at once, and the same run crashed after epoch k then resumed to E: the same
    final weights (torch.equal) and the same history (losses, steps, learning rates)."""
    train = load_dataset(tiny_paths.train)
    mc = ModelConfig(N=32, architecture="fno", fno_width=8, fno_modes=4, fno_blocks=1,
                     fno_cnn_blocks=1)
    tc = TrainingConfig(epochs=4, batch_size=8, seed=3, val_fraction=0.2)
    dc = data_config_from(train)

    def fit(work, **kw):
        return fit_model(mc, tc, dc, train, work, progress_bar=False, **kw)
    whole = fit(tmp_path / "whole")
    with pytest.raises(_CrashError):
        fit(tmp_path / "cut", extra_callbacks=[_CrashAtEpoch(2)])
    seen = _SamplerEpochs()
    resumed = fit(tmp_path / "cut", resume=True, extra_callbacks=[seen])
    assert resumed.resumed_from_epoch == 1 and whole.resumed_from_epoch is None
    assert _without_times(resumed.history) == _without_times(whole.history)
    assert whole.history["epoch"] == [0, 1, 2, 3]
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    assert seen.seen == [2, 3]   # Lightning set the sampler's epoch, after the resume too
    # Lightning's CSV log of the first two epochs is kept beside the resumed run's
    def csv_epochs(path):
        return sorted({int(line.split(",")[0]) for line in path.read_text().splitlines()[1:]})
    logs = tmp_path / "cut" / "logs"
    assert csv_epochs(logs / "metrics.csv") == [0, 1]
    assert csv_epochs(logs / "resumed_after_epoch_1" / "metrics.csv") == [2, 3]


# Lightning's lines a run must not print (each would read as a fault to a user): the
# messages' own words, as Lightning 2.6 writes them
ALARMING = ("`weights_only` was not set", "could not find the monitored key",
            "Previous log files in this directory will be deleted", "exists and is not empty",
            "Early stopping conditioned on metric")


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _alarming_lines(run) -> list[str]:
    """Every warning and Lightning log line of ``run()`` that matches :data:`ALARMING`."""
    handler, names = _Lines(), ("lightning", "lightning.pytorch", "lightning.fabric")
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).addHandler(handler)
        logging.getLogger(n).setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
    finally:
        for n in names:
            logging.getLogger(n).removeHandler(handler)
            logging.getLogger(n).setLevel(saved[n])
    lines = [str(w.message) for w in caught] + handler.lines
    return [line for line in lines if any(a in line for a in ALARMING)]


def test_training_and_resuming_print_none_of_lightnings_alarming_lines(tmp_path, tiny_paths):
    """A tiny run that crashes before epoch 2, a resume that crashes there again, a second
    resume to the end; and a step budget that ends before the first validation, with early
    stopping: none prints Lightning's weights_only / monitored-key / log-deletion /
    checkpoint-folder lines (and the step-budget run does not stop on a missing val_loss)."""
    train = load_dataset(tiny_paths.train)
    mc = ModelConfig(N=32, architecture="fno", fno_width=8, fno_modes=4, fno_blocks=1,
                     fno_cnn_blocks=1)
    tc = TrainingConfig(epochs=3, batch_size=8, seed=3, val_fraction=0.2)
    dc = data_config_from(train)
    work = tmp_path / "run"

    def runs():
        for resume in (False, True):
            with pytest.raises(_CrashError):
                fit_model(mc, tc, dc, train, work, progress_bar=False, resume=resume,
                          extra_callbacks=[_CrashAtEpoch(2)])
        done = fit_model(mc, tc, dc, train, work, progress_bar=False, resume=True)
        assert done.resumed_from_epoch == 1 and done.history["epoch"] == [0, 1, 2]
        steps = fit_model(mc, replace(tc, max_steps=3, early_stopping_patience=1), dc, train,
                          tmp_path / "steps", progress_bar=False)
        assert steps.stop_reason == "max_steps" and steps.steps_completed == 3
    assert _alarming_lines(runs) == []
    logs = work / "logs"   # every session's CSV log is kept
    assert sorted(p.name for p in logs.iterdir() if p.is_dir()) == [
        "resumed_after_epoch_1", "resumed_after_epoch_1_2"]
    names = sorted(p.name for p in (work / "checkpoints").iterdir())
    assert len(names) == 3 and names[0].startswith("epoch") and names[1:] == ["final.ckpt",
                                                                              "last.ckpt"]
