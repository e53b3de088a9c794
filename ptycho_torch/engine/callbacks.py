"""The Lightning callbacks and checkpoint I/O of a training run.

- :class:`AtomicCheckpointIO`: ``last.ckpt`` and the best checkpoint are written through
  a temporary file in the same directory, fsync, ``os.replace``: a run killed at any moment
  leaves either the previous or the new complete checkpoint, never a truncated one.
- :class:`HistoryCallback`: one row per epoch (epoch, step, train/val loss, learning rate,
  wall time), stateful (fixed ``state_key``) so a resumed run continues its history.
- :class:`PatternCounter`: the training samples actually trained (a partial last batch by
  its size).
- :class:`EpochLogCallback`: one log line per epoch where there is no progress bar.
- :class:`SnapshotCallback`: per-epoch reconstruction snapshots of a few fixed test
  patches, so a long run can be watched while it trains. It predicts them with
  ``forward_predict`` every ``every`` epochs and writes a small PNG (amplitude and phase of
  each patch, next to the ground-truth patch when the test data carry ``Y_I`` / ``Y_phi``
  labels) to ``<out_dir>/<model_id>_epoch<k>.png``, ``k`` = number of completed epochs,
  zero-padded to three digits (``pinn_fno_epoch005.png``). Files are written atomically,
  only by global rank 0, and the model's training mode and the random number generators
  are left untouched (eval-mode forward under ``torch.no_grad``), so snapshots do not
  change the training result. The figure is drawn by
  :func:`ptycho.plotting.save_snapshot_figure` (rows named by the test pattern's index).
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ptycho.artifacts import atomic_path
from ptycho.dataset import PtychoDataset
from ptycho.plotting import save_snapshot_figure


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint writes through :func:`ptycho.artifacts.atomic_path` (temporary file beside
    the target, fsync, ``os.replace``): a run killed at any moment leaves the previous or the
    new complete checkpoint. (Lightning's own writer stages the bytes in the system temp dir
    and *moves* them, which is a plain copy when that dir is on another file system, and
    leaves stale temp files behind on SIGKILL.)
    """

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                torch.save(checkpoint, fh)


class PatternCounter(Callback):
    """Counts the training samples of every training batch this process ran (the
    batch's own size, so a last partial batch is not counted as a full one)."""

    def __init__(self) -> None:
        self.count = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.count += int(batch[0].shape[0])


class HistoryCallback(Callback):
    """Records epoch, train/val loss, learning rate and wall time after each epoch.

    Rows are recorded in ``on_train_epoch_end`` (after validation), before Lightning's
    ``ModelCheckpoint`` (always ordered last) writes the epoch's checkpoint, so the saved
    state includes that epoch. Its state is saved in checkpoints under the fixed
    ``state_key`` ``"HistoryCallback"``, so a resumed run keeps the earlier epochs.
    """

    def __init__(self) -> None:
        self.rows: list[dict] = []

    @property
    def state_key(self) -> str:
        return "HistoryCallback"

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        m = trainer.callback_metrics
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        row = {"epoch": int(trainer.current_epoch), "step": int(trainer.global_step),
               "train_loss": _scalar(m.get("train_loss")),
               "val_loss": _scalar(m.get("val_loss")),
               "lr": float(lr),
               "time_s": time.time()}
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]

    def state_dict(self) -> dict:
        return {"rows": list(self.rows)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = list(state_dict.get("rows", []))

    def as_columns(self) -> dict:
        """``{epoch, train_loss, val_loss, lr, time_s: [...]}``; ``time_s`` is the Unix time
        at which the epoch ended (shows which session trained it after a resume)."""
        keys = ("epoch", "step", "train_loss", "val_loss", "lr", "time_s")
        rows = sorted(self.rows, key=lambda r: r["epoch"])
        return {k: [r.get(k) for r in rows] for k in keys}


def _scalar(v) -> float:
    return float(v.detach().cpu()) if isinstance(v, torch.Tensor) else float("nan")


class EpochLogCallback(Callback):
    """One log line per epoch (for batch jobs, SLURM and CI logs, where a progress bar would
    write thousands of carriage-return updates): epoch, optimizer step, train and validation
    loss, learning rate, elapsed time. ``fit_model`` logs the stop reason at the end."""

    def __init__(self, logger: logging.Logger, max_epochs: int) -> None:
        self._logger = logger
        self.max_epochs = max_epochs
        self.t0 = time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        self.t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        m = trainer.callback_metrics
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        self._logger.info(format_epoch_line(int(trainer.current_epoch), self.max_epochs,
                                        int(trainer.global_step), _scalar(m.get("train_loss")),
                                        _scalar(m.get("val_loss")), float(lr),
                                        time.perf_counter() - self.t0))


class Heartbeat(Callback):
    """A log line every ``every_s`` seconds of training, between the epoch lines: the step,
    the steps per second since the previous line and the time left at that rate, so that a
    slow run (a busy machine) is told apart from a hung one. ``clock``: seconds, for tests."""

    def __init__(self, logger: logging.Logger, every_s: float = 30.0, clock=time.perf_counter):
        self._logger, self.every_s, self._clock = logger, float(every_s), clock
        self._t, self._step = clock(), 0

    def on_train_start(self, trainer, pl_module) -> None:
        self._t, self._step = self._clock(), int(trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = self._clock()
        if now - self._t < self.every_s or not trainer.is_global_zero:
            return
        step = int(trainer.global_step)
        rate = (step - self._step) / (now - self._t)
        total = trainer.estimated_stepping_batches
        total = int(total) if isinstance(total, (int, float)) and math.isfinite(total) else None
        self._logger.info(format_heartbeat(step, total, rate))
        self._t, self._step = now, step


def format_heartbeat(step: int, total: int | None, rate: float) -> str:
    """``training: step 120/2520, 0.85 steps/s, about 47 min left`` (the total and the time
    left only when the plan is known and steps are advancing)."""
    line = f"training: step {step}" + (f"/{total}" if total else "") + f", {rate:.3g} steps/s"
    if total and rate > 0 and total > step:
        left = (total - step) / rate
        line += (f", about {left / 60:.0f} min left" if left >= 120 else
                 f", about {left:.0f} s left")
    return line


def format_epoch_line(epoch: int, max_epochs: int, step: int, train_loss: float,
                      val_loss: float, lr: float, elapsed_s: float) -> str:
    """``epoch 3/50  step 2460  train_loss 0.09120  val_loss 0.09340  lr 0.002  121 s``
    (``epoch`` is 0-based on input, printed 1-based)."""
    return (f"epoch {epoch + 1}/{max_epochs}  step {step}  train_loss {train_loss:.5g}  "
            f"val_loss {val_loss:.5g}  lr {lr:.3g}  {elapsed_s:.0f} s")


def snapshot_indices(test: PtychoDataset, n_patches: int) -> np.ndarray:
    """``n_patches`` pattern indices of test object 0, evenly spread over its scan."""
    if n_patches < 1:
        raise ValueError(f"n_patches={n_patches} must be >= 1")
    try:
        idx = test.object_selection(0)
    except ValueError:  # no object 0: any patterns will do for a snapshot
        idx = np.arange(test.n)
    pick = np.unique(np.linspace(0, idx.size - 1, min(n_patches, idx.size)).round().astype(int))
    return idx[pick]


def snapshot_path(out_dir: Path, model_id: str, epochs_done: int) -> Path:
    return Path(out_dir) / f"{model_id}_epoch{int(epochs_done):03d}.png"


class SnapshotCallback(Callback):
    """Every ``every`` epochs, predict fixed test patches and write a PNG.

    Args:
        test: the test :class:`ptycho.dataset.PtychoDataset` (``diffraction`` (n,C,N,N)
            float32, ``coords_nominal`` (n,C,1,2) float32, ``probe`` (N,N) complex64;
            optional ``Y_I``/``Y_phi`` (n,C,N,N) labels).
        out_dir: directory of the PNGs (``visuals/snapshots`` in a study).
        model_id: file name prefix.
        every: epochs between snapshots (>= 1).
        n_patches: patches shown (rows of the figure); channel 0 of each.
    """

    def __init__(self, test: PtychoDataset, out_dir, model_id: str, every: int, n_patches: int = 4):
        if int(every) < 1:
            raise ValueError(f"snapshot every={every} must be >= 1")
        self.every = int(every)
        self.out_dir = Path(out_dir)
        self.model_id = str(model_id)
        idx = snapshot_indices(test, n_patches)
        self.indices = [int(i) for i in idx]
        self.x = torch.from_numpy(np.ascontiguousarray(test.diffraction[idx], np.float32))
        self.positions = torch.from_numpy(
            np.ascontiguousarray(test.coords_nominal[idx], np.float32))
        self.probe = torch.as_tensor(np.asarray(test.probe)).to(torch.complex64)
        self.truth = None
        if test.Y_I is not None and test.Y_phi is not None:
            self.truth = (np.asarray(test.Y_I[idx][:, 0]), np.asarray(test.Y_phi[idx][:, 0]))
        self.written: list[Path] = []

    def predict(self, pl_module) -> np.ndarray:
        """Object patches (n, N, N) complex64 (channel 0) from the module as it is now."""
        device = pl_module.device
        scale = float(getattr(pl_module.data_config, "input_scale", 1.0))
        n = self.x.shape[0]
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                obj = pl_module.forward_predict(
                    # the probe argument is unused by forward_predict: it stays on the CPU
                    self.x.to(device), self.positions.to(device), self.probe,
                    torch.full((n, 1, 1, 1), scale, dtype=torch.float32, device=device))
        finally:
            pl_module.train(was_training)
        return obj[:, 0].detach().to("cpu").numpy().astype(np.complex64)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        done = int(trainer.current_epoch) + 1
        if done % self.every or not trainer.is_global_zero:
            return
        self.written.append(self.write(pl_module, done))

    def write(self, pl_module, epochs_done: int) -> Path:
        return save_snapshot_figure(snapshot_path(self.out_dir, self.model_id, epochs_done),
                                    self.predict(pl_module), self.truth,
                                    f"{self.model_id}: epoch {epochs_done}",
                                    [f"pattern {i}" for i in self.indices])
