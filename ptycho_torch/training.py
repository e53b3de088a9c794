"""Lightning training of a :class:`PtychoPINN_Lightning` from a training payload.

``fit_model`` builds the module, the seeded train/validation split, the loaders and a
``lightning.Trainer`` (progress bar, CSV log, checkpoints, optional early stopping,
optional wall-time limit, DDP when asked), fits, and returns the trained module with the
per-epoch history. Checkpoints go to ``work_dir`` so an interrupted run can resume.

Reliability:

- ``work_dir/checkpoints/last.ckpt`` is written at the end of every epoch, after the
  history row of that epoch is recorded, through :class:`AtomicCheckpointIO` (temporary
  file in the same directory, fsync, ``os.replace``): a run killed at any moment leaves
  either the previous or the new complete checkpoint, never a truncated one.
- :class:`HistoryCallback` is stateful (fixed ``state_key``), so a resumed run continues
  the per-epoch history instead of restarting it.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ptycho_torch.config_factory import TrainingPayload
from ptycho_torch.data import make_loaders, object_amplitude_estimate, split_indices
from ptycho_torch.model import PtychoPINN_Lightning


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint writes that are atomic on a local or network file system.

    ``torch.save`` goes to ``.<name>.tmp-<pid>`` beside the target, is flushed and
    fsync'ed, then renamed over the target with ``os.replace``. (Lightning's own writer
    stages the bytes in the system temp dir and *moves* them, which is a plain copy when
    that dir is on another file system, and leaves stale temp files behind on SIGKILL.)
    """

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def read_checkpoint_epoch(path) -> int:
    """The epoch index stored in a Lightning checkpoint (0-based: the last finished epoch).

    Raises ValueError (one line) when the file is missing, truncated or not a checkpoint.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        return int(ckpt["epoch"])
    except Exception as exc:  # noqa: BLE001 - any failure means "not resumable"
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        raise ValueError(f"checkpoint '{path}' is unreadable ({reason}) "
                         "(expected a complete Lightning checkpoint)") from None


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
        row = {"epoch": int(trainer.current_epoch),
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
        keys = ("epoch", "train_loss", "val_loss", "lr", "time_s")
        rows = sorted(self.rows, key=lambda r: r["epoch"])
        return {k: [r[k] for r in rows] for k in keys}


def _scalar(v) -> float:
    return float(v.detach().cpu()) if isinstance(v, torch.Tensor) else float("nan")


@dataclass
class FitResult:
    model: PtychoPINN_Lightning
    history: dict
    train_time_s: float
    n_train: int
    n_val: int
    epochs_completed: int
    checkpoint: Path | None
    interrupted: bool = False
    extra: dict = field(default_factory=dict)


def resolve_accelerator(device: str) -> str:
    """'auto' -> 'cuda' when available else 'cpu'; 'cuda' without CUDA is an error."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no CUDA device is available (allowed here: auto, cpu)")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _strategy(tc, accelerator: str, num_nodes: int):
    """'auto' for one process; DDP (gloo on CPU, NCCL on CUDA) for several."""
    if tc.strategy != "ddp" and tc.devices * num_nodes == 1:
        return "auto"
    from lightning.pytorch.strategies import DDPStrategy
    # start_method "popen" (the default): Lightning re-runs the launching script for each
    # extra local rank; torchrun / SLURM start the processes themselves.
    return DDPStrategy(process_group_backend="gloo" if accelerator == "cpu" else None)


def _stop_reason(trainer, early: EarlyStopping | None, max_epochs: int) -> str:
    if trainer.interrupted:
        return "interrupted"
    if early is not None and early.stopped_epoch > 0:
        return "early_stopping"
    if trainer.current_epoch >= max_epochs:
        return "max_epochs"
    return "max_time"


def fit_model(payload: TrainingPayload, train: dict, probe: np.ndarray, work_dir: Path, *,
              resume: bool = False, max_minutes: float = 0.0, progress_bar: bool = True,
              extra_callbacks: list | None = None, num_nodes: int = 1) -> FitResult:
    """Train on ``train`` (the loader's channel-first mapping) with the known ``probe``.

    ``resume``: continue from ``work_dir/checkpoints/last.ckpt`` when it exists (weights,
    optimizer, scheduler, epoch counter, history, early-stopping state).
    ``num_nodes`` x ``training_config.devices`` processes train with DDP when > 1.
    ``extra.stop_reason`` is one of ``max_epochs``, ``early_stopping``, ``max_time``,
    ``interrupted``; ``extra.resumed_from_epoch`` the checkpoint's epoch (or None).
    """
    tc, dc = payload.training_config, payload.data_config
    work_dir = Path(work_dir)
    L.seed_everything(tc.seed, workers=True, verbose=False)
    split = split_indices(train["diffraction"].shape[0], dc.val_fraction, tc.seed,
                          tc.max_train_patterns)
    model = PtychoPINN_Lightning(payload.model_config, dc, tc)
    model.set_probe(probe)
    # start from a uniform object as bright as the data say (restored weights replace it)
    model.generator.head.set_initial_amplitude(
        object_amplitude_estimate(train["diffraction"][split.train_idx[:2048]], probe))
    train_loader, val_loader = make_loaders(train, split, dc.input_scale, tc.batch_size, tc.seed)
    history = HistoryCallback()
    ckpt_dir = work_dir / "checkpoints"
    # last.ckpt after every epoch (at train-epoch end, after HistoryCallback recorded it);
    # plus the best epoch by validation loss.
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="epoch{epoch:03d}",
                                 auto_insert_metric_name=False, save_last=True, save_top_k=1,
                                 monitor="val_loss", mode="min", every_n_epochs=1,
                                 save_on_train_epoch_end=True)
    callbacks = [history, checkpoint] + list(extra_callbacks or [])
    early = None
    if tc.early_stopping_patience > 0:
        early = EarlyStopping(monitor="val_loss", mode="min", patience=tc.early_stopping_patience)
        callbacks.append(early)
    accelerator = resolve_accelerator(tc.device)
    trainer = L.Trainer(
        max_epochs=tc.epochs, accelerator=accelerator, devices=tc.devices, num_nodes=num_nodes,
        strategy=_strategy(tc, accelerator, num_nodes), plugins=[AtomicCheckpointIO()],
        logger=CSVLogger(str(work_dir), name="logs", version=""), callbacks=callbacks,
        enable_progress_bar=progress_bar, enable_model_summary=False,
        deterministic="warn" if tc.deterministic else None,
        max_time={"minutes": max_minutes} if max_minutes and max_minutes > 0 else None,
        log_every_n_steps=50, num_sanity_val_steps=0)
    ckpt_path = None
    resumed_from = None
    last = ckpt_dir / "last.ckpt"
    if resume and last.exists():
        ckpt_path = str(last)
        resumed_from = read_checkpoint_epoch(last)
    t0 = time.perf_counter()
    trainer.fit(model, train_loader, val_loader, ckpt_path=ckpt_path)
    train_time = time.perf_counter() - t0
    # The weights the study reconstructs with: after a wall-time stop they are newer than
    # last.ckpt (saved at the previous epoch end). Every rank calls this; rank 0 writes.
    final = ckpt_dir / "final.ckpt"
    trainer.save_checkpoint(final)
    return FitResult(model=model, history=history.as_columns(), train_time_s=train_time,
                     n_train=int(split.train_idx.size), n_val=int(split.val_idx.size),
                     epochs_completed=int(trainer.current_epoch),
                     checkpoint=final,
                     interrupted=bool(trainer.interrupted),
                     extra={"is_global_zero": trainer.is_global_zero,
                            "accelerator": accelerator,
                            "world_size": int(trainer.world_size),
                            "stop_reason": _stop_reason(trainer, early, tc.epochs),
                            "resumed_from_epoch": resumed_from})


