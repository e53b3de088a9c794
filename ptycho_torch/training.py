"""Lightning training of a :class:`PtychoPINN_Lightning` from a training payload.

``fit_model`` builds the module, the seeded train/validation split, the loaders and a
``lightning.Trainer`` (progress bar, CSV log, checkpoints, optional early stopping,
optional wall-time limit, DDP when asked), fits, and returns the trained module with the
per-epoch history. Checkpoints go to ``work_dir`` so an interrupted run can resume.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from ptycho_torch.config_factory import TrainingPayload
from ptycho_torch.data import (
    input_scale_from, make_loaders, object_amplitude_estimate, split_indices,
)
from ptycho_torch.model import PtychoPINN_Lightning


class HistoryCallback(Callback):
    """Records epoch, train/val loss and learning rate after each validation epoch.

    Its state is saved in checkpoints, so a resumed run keeps the earlier epochs.
    """

    def __init__(self) -> None:
        self.rows: list[dict] = []

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
        keys = ("epoch", "train_loss", "val_loss", "lr")
        return {k: [r[k] for r in self.rows] for k in keys}


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


def fit_model(payload: TrainingPayload, train: dict, probe: np.ndarray, work_dir: Path, *,
              resume: bool = False, max_minutes: float = 0.0, progress_bar: bool = True,
              extra_callbacks: list | None = None) -> FitResult:
    """Train on ``train`` (the loader's channel-first mapping) with the known ``probe``."""
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
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="epoch{epoch:03d}",
                                 auto_insert_metric_name=False, save_last=True, save_top_k=1,
                                 monitor="val_loss", mode="min")
    callbacks = [history, checkpoint] + list(extra_callbacks or [])
    if tc.early_stopping_patience > 0:
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min",
                                       patience=tc.early_stopping_patience))
    accelerator = resolve_accelerator(tc.device)
    strategy = "ddp" if tc.strategy == "ddp" else "auto"
    if strategy == "ddp" and accelerator == "cpu":
        from lightning.pytorch.strategies import DDPStrategy
        strategy = DDPStrategy(process_group_backend="gloo")
    trainer = L.Trainer(
        max_epochs=tc.epochs, accelerator=accelerator, devices=tc.devices, strategy=strategy,
        logger=CSVLogger(str(work_dir), name="logs", version=""), callbacks=callbacks,
        enable_progress_bar=progress_bar, enable_model_summary=False,
        deterministic="warn" if tc.deterministic else None,
        max_time={"minutes": max_minutes} if max_minutes and max_minutes > 0 else None,
        log_every_n_steps=50, num_sanity_val_steps=0)
    ckpt_path = None
    last = ckpt_dir / "last.ckpt"
    if resume and last.exists():
        ckpt_path = str(last)
    t0 = time.perf_counter()
    trainer.fit(model, train_loader, val_loader, ckpt_path=ckpt_path)
    train_time = time.perf_counter() - t0
    best = checkpoint.last_model_path or None
    return FitResult(model=model, history=history.as_columns(), train_time_s=train_time,
                     n_train=int(split.train_idx.size), n_val=int(split.val_idx.size),
                     epochs_completed=int(trainer.current_epoch),
                     checkpoint=Path(best) if best else None,
                     interrupted=bool(trainer.interrupted),
                     extra={"is_global_zero": trainer.is_global_zero,
                            "accelerator": accelerator})


def default_input_scale(train: dict) -> float:
    return input_scale_from(train["diffraction"])


