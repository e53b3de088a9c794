"""Lightning training of a :class:`PtychoPINN_Lightning` from the study's configs.

``fit_model`` builds the module, the seeded train/validation split, the loaders and a
``lightning.Trainer`` (progress bar, CSV log, checkpoints, optional early stopping,
optional wall-time limit, DDP when asked), fits, and returns the trained module with the
per-epoch history. Checkpoints go to ``work_dir`` so an interrupted run can resume.

Reliability:

- ``work_dir/checkpoints/last.ckpt`` is written at the end of every epoch, after the
  history row of that epoch is recorded, through
  :class:`~ptycho_torch.engine.callbacks.AtomicCheckpointIO` (temporary file in the same
  directory, fsync, ``os.replace``): a run killed at any moment leaves either the previous
  or the new complete checkpoint, never a truncated one.
- :class:`~ptycho_torch.engine.callbacks.HistoryCallback` is stateful (fixed
  ``state_key``), so a resumed run continues the per-epoch history instead of restarting it.
- The training order of each epoch depends on the seed and the epoch only
  (:class:`~ptycho_torch.engine.data.EpochOrder`), so a resumed run is the uninterrupted
  one (bit for bit on CPU with the same threads, torch and batch size).
"""
from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from ptycho.config.config import DataConfig, ModelConfig, TrainingConfig
from ptycho.dataset import PtychoDataset
from ptycho_torch.model.checkpoint import lightning_weights_only
from ptycho_torch.model import build_model
from ptycho_torch.engine.callbacks import (
    AtomicCheckpointIO,
    EpochLogCallback,
    Heartbeat,
    HistoryCallback,
    PatternCounter,
)
from ptycho_torch.engine.data import make_loaders, object_amplitude_estimate, split_indices
from ptycho_torch.engine.device import resolve_device
from ptycho_torch.engine.loggers import make_logger
from ptycho_torch.engine.outputs import last_checkpoint_in, read_checkpoint_epoch
from ptycho_torch.engine.weight_averaging import weight_average_callbacks
from ptycho_torch.model import PtychoPINN_Lightning

log = logging.getLogger(__name__)


def _strategy(tc, accelerator: str):
    """'auto' for one process; DDP (gloo on CPU, NCCL on CUDA) for several."""
    if tc.strategy != "ddp" and tc.devices * tc.num_nodes == 1:
        return "auto"
    from lightning.pytorch.strategies import DDPStrategy
    # start_method "popen" (the default): Lightning re-runs the launching script for each
    # extra local rank; torchrun / SLURM start the processes themselves.
    return DDPStrategy(process_group_backend="gloo" if accelerator == "cpu" else None)


def show_progress_bar(requested: bool, stream=None) -> bool:
    """Lightning's bar only when asked for and the stream (stderr) is a terminal; otherwise
    :class:`EpochLogCallback` writes one line per epoch."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(requested) and bool(isatty and isatty())


STOP_REASONS = ("max_epochs", "max_steps", "early_stopping", "max_time", "interrupted")


@dataclass
class FitResult:
    """What training produced. ``stop_reason`` is one of :data:`STOP_REASONS`;
    ``resumed_from_epoch`` the checkpoint's epoch (0-based) or None; on the extra ranks of
    a distributed run ``is_global_zero`` is False (they write nothing).
    ``patterns_trained``: training samples (groups) actually passed through a training
    step in this call, on all ranks (a last partial batch counts its own size; a resumed
    run counts only its new steps, as ``train_time_s`` times only them). ``candidates``: the
    starts it was chosen from (:mod:`ptycho_torch.pipeline.candidates`), or None."""

    model: PtychoPINN_Lightning
    history: dict
    train_time_s: float
    n_train: int
    n_val: int
    epochs_completed: int
    steps_completed: int
    epochs_trained: float
    checkpoint: Path | None
    stop_reason: str
    resumed_from_epoch: int | None
    world_size: int
    accelerator: str
    is_global_zero: bool = True
    patterns_trained: int = 0
    candidates: list | None = None

    @property
    def interrupted(self) -> bool:
        return self.stop_reason == "interrupted"


def _stop_reason(trainer, early: EarlyStopping | None, max_epochs: int, max_steps: int) -> str:
    if trainer.interrupted:
        return "interrupted"
    if early is not None and early.stopped_epoch > 0:
        return "early_stopping"
    if max_steps > 0 and trainer.global_step >= max_steps:
        return "max_steps"
    if trainer.current_epoch >= max_epochs:
        return "max_epochs"
    return "max_time"


@dataclass
class PreparedFit:
    """Everything :func:`finish_fit` needs: the module, its loaders, the ``lightning.Trainer``
    (callbacks may still be appended to ``trainer.callbacks``), the budget actually used and
    the checkpoint to resume from (or None)."""

    model: PtychoPINN_Lightning
    trainer: L.Trainer
    train_loader: object
    val_loader: object
    split: object
    tc: TrainingConfig
    cbs: "_Callbacks"
    accelerator: str
    ckpt_dir: Path
    ckpt_path: str | None
    resumed_from: int | None
    trust_checkpoint: bool


def fit_model(model_config: ModelConfig, training_config: TrainingConfig,
              data_config: DataConfig, train: PtychoDataset, work_dir: Path, *,
              resume: bool = False, progress_bar: bool = True,
              extra_callbacks: list | None = None, probe_config=None,
              logger: str = "csv", trust_checkpoint: bool = False) -> FitResult:
    """Train on ``train`` with its probe (and bad-pixel mask) in the forward operator.

    ``resume``: continue from ``work_dir/checkpoints/last.ckpt`` when it exists (weights,
    optimizer, scheduler, epoch counter, history, early-stopping state), read weights only
    unless ``trust_checkpoint`` (:mod:`ptycho_torch.model.checkpoint`).
    ``training_config.num_nodes`` x ``devices`` processes train with DDP when > 1.
    The budget is ``epochs`` and ``max_steps`` (when > 0); ``max_train_minutes`` is a
    wall-clock cap whose stop is reported as ``stop_reason == "max_time"``.
    """
    return finish_fit(prepare_fit(model_config, training_config, data_config, train, work_dir,
                                  resume=resume, progress_bar=progress_bar,
                                  extra_callbacks=extra_callbacks, probe_config=probe_config,
                                  logger=logger, trust_checkpoint=trust_checkpoint))


def prepare_fit(model_config: ModelConfig, training_config: TrainingConfig,
                data_config: DataConfig, train: PtychoDataset, work_dir: Path, *,
                resume: bool = False, progress_bar: bool = True,
                extra_callbacks: list | None = None, probe_config=None,
                logger: str = "csv", trust_checkpoint: bool = False,
                model: PtychoPINN_Lightning | None = None) -> PreparedFit:
    """The first half of :func:`fit_model` (same arguments): seeds, builds the module (or
    takes ``model``, built by :func:`ptycho_torch.model.build_model` with ``train``),
    the seeded split, the loaders, the callbacks and the ``lightning.Trainer``; fits
    nothing."""
    tc = training_config
    work_dir = Path(work_dir)
    L.seed_everything(tc.seed, workers=True, verbose=False)
    split = split_indices(train.n, tc.val_fraction, tc.seed, tc.max_train_patterns)
    if model is None:
        model = build_model(model_config, data_config, tc, train,  # the config factory's path
                            probe_config=probe_config)
    # start from a uniform object as bright as the data say (restored weights replace it)
    model.generator.set_initial_amplitude(
        object_amplitude_estimate(train.diffraction[split.train_idx[:2048]], train.probe))
    train_loader, val_loader = make_loaders(train, split, data_config.input_scale,
                                            tc.batch_size, tc.seed)
    tc = scaled_budget(tc, len(train_loader))
    last = last_checkpoint_in(work_dir)  # ModelCheckpoint(filename="last") in its folder
    ckpt_dir = last.parent
    cbs = _make_callbacks(tc, ckpt_dir, progress_bar, extra_callbacks)
    accelerator = resolve_device(tc.device)
    log.info("training %s on %s: %d training / %d validation patterns, batch %d, %s",
             model_config.architecture, accelerator, split.train_idx.size, split.val_idx.size,
             tc.batch_size, f"{tc.epochs} epochs" + (f" or {tc.max_steps} steps"
                                                     if tc.max_steps else ""))
    ckpt_path = resumed_from = None
    if resume and last.exists():
        ckpt_path = str(last)
        resumed_from = read_checkpoint_epoch(last, trust=trust_checkpoint)
    trainer = _make_trainer(tc, accelerator, cbs, len(train_loader),
                            make_logger(logger, work_dir, resumed_from))
    return PreparedFit(model=model, trainer=trainer, train_loader=train_loader,
                       val_loader=val_loader, split=split, tc=tc, cbs=cbs,
                       accelerator=accelerator, ckpt_dir=ckpt_dir, ckpt_path=ckpt_path,
                       resumed_from=resumed_from, trust_checkpoint=trust_checkpoint)


def finish_fit(p: PreparedFit) -> FitResult:
    """The second half of :func:`fit_model`: fits ``p.trainer`` and saves
    ``checkpoints/final.ckpt``."""
    model, trainer, tc, cbs, split = p.model, p.trainer, p.tc, p.cbs, p.split
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        if p.ckpt_path is not None:
            # On --resume the checkpoint folder holds this run's own last.ckpt and best
            # epoch, which ModelCheckpoint keeps updating; its warning that the folder "is not
            # empty" (it may overwrite files there) is about exactly these files: harmless.
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is "
                                    r"not empty\.$")
        trainer.fit(model, p.train_loader, p.val_loader, ckpt_path=p.ckpt_path,
                    weights_only=lightning_weights_only(p.trust_checkpoint))
    train_time = time.perf_counter() - t0
    reason = _stop_reason(trainer, cbs.early, tc.epochs, tc.max_steps)
    per_epoch = trainer.num_training_batches  # per rank (DDP shards the loader)
    if not (isinstance(per_epoch, (int, float)) and 0 < per_epoch < float("inf")):
        per_epoch = len(p.train_loader)
    epochs_trained = trainer.global_step / max(per_epoch, 1)  # partial epochs count
    if trainer.is_global_zero:
        log.info("training stopped (%s) after %d step(s) = %.2f epochs, %.0f s", reason,
                 int(trainer.global_step), epochs_trained, train_time)
    # The weights the study reconstructs with: after a wall-time or step stop they are
    # newer than last.ckpt (saved at the previous epoch end). Every rank calls this; rank 0
    # writes. A full checkpoint (Lightning's weights_only=False saves the optimizer and loop
    # state too, for resume); every value in it is still a tensor or a plain value.
    final = p.ckpt_dir / "final.ckpt"
    trainer.save_checkpoint(final, weights_only=False)
    return FitResult(model=model, history=cbs.history.as_columns(), train_time_s=train_time,
                     n_train=int(split.train_idx.size), n_val=int(split.val_idx.size),
                     epochs_completed=int(trainer.current_epoch),
                     steps_completed=int(trainer.global_step),
                     epochs_trained=round(float(epochs_trained), 4), checkpoint=final,
                     stop_reason=reason, resumed_from_epoch=p.resumed_from,
                     world_size=int(trainer.world_size), accelerator=p.accelerator,
                     is_global_zero=bool(trainer.is_global_zero),
                     patterns_trained=cbs.counter.count * int(trainer.world_size))


def scaled_budget(tc: TrainingConfig, steps_per_epoch: int) -> TrainingConfig:
    """``tc`` with the epochs raised to ``ceil(min_steps / steps_per_epoch)`` when its epochs
    give fewer than ``min_steps`` optimizer steps (logged), else ``tc`` itself."""
    if not tc.min_steps or tc.epochs * steps_per_epoch >= tc.min_steps:
        return tc
    epochs = math.ceil(tc.min_steps / max(steps_per_epoch, 1))
    log.info("budget: %d epochs x %d batches = %d steps < min_steps %d: training %d epochs",
             tc.epochs, steps_per_epoch, tc.epochs * steps_per_epoch, tc.min_steps, epochs)
    return replace(tc, epochs=min(epochs, 100000))


@dataclass
class _Callbacks:
    """The trainer's callbacks (``all``, in order) and those :func:`fit_model` reads after
    fitting; ``bar``: whether Lightning's progress bar is shown."""

    history: HistoryCallback
    counter: PatternCounter
    early: EarlyStopping | None
    all: list
    bar: bool


def _make_callbacks(tc: TrainingConfig, ckpt_dir: Path, progress_bar: bool,
                    extra_callbacks: list | None) -> _Callbacks:
    """History, pattern counter, checkpoints, the extra callbacks, the per-epoch log line
    (without a progress bar) and early stopping (when ``early_stopping_patience`` > 0)."""
    history = HistoryCallback()
    # last.ckpt after every epoch (at train-epoch end, after HistoryCallback recorded it),
    # whether or not validation ran (a step budget may end an epoch early)...
    last = ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1,
                           every_n_epochs=1, save_on_train_epoch_end=True,
                           enable_version_counter=False)
    # ...and the best epoch by validation loss, chosen where that loss exists: at the end of
    # each validation (so a run stopped before its first validation has none, silently).
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="epoch{epoch:03d}",
                           auto_insert_metric_name=False, save_top_k=1, monitor="val_loss",
                           mode="min", every_n_epochs=1, save_on_train_epoch_end=False)
    bar = show_progress_bar(progress_bar)
    counter = PatternCounter()
    callbacks = ([history, counter, last, best] + weight_average_callbacks(tc)
                 + list(extra_callbacks or []))
    if not bar:  # without a bar: a line per epoch, and one every 30 s in between
        callbacks += [EpochLogCallback(log, tc.epochs), Heartbeat(log)]
    early = None
    if tc.early_stopping_patience > 0:  # checked after each validation, where val_loss exists
        early = EarlyStopping(monitor="val_loss", mode="min", patience=tc.early_stopping_patience,
                              check_on_train_epoch_end=False)
        callbacks.append(early)
    return _Callbacks(history=history, counter=counter, early=early, all=callbacks, bar=bar)


def _make_trainer(tc: TrainingConfig, accelerator: str, cbs: _Callbacks,
                  n_train_batches: int, logger) -> L.Trainer:
    """The ``lightning.Trainer`` of the budget, devices, precision and callbacks of ``tc``,
    writing to ``logger`` (:func:`ptycho_torch.engine.loggers.make_logger`)."""
    return L.Trainer(
        max_epochs=tc.epochs, max_steps=tc.max_steps if tc.max_steps > 0 else -1,
        accelerator=accelerator, devices=tc.devices, num_nodes=tc.num_nodes,
        strategy=_strategy(tc, accelerator), plugins=[AtomicCheckpointIO()],
        precision=tc.precision,  # "bf16-mixed": Lightning's MixedPrecision (autocast)
        logger=logger, callbacks=cbs.all,
        enable_progress_bar=cbs.bar, enable_model_summary=False,
        deterministic="warn" if tc.deterministic else False,
        max_time={"minutes": tc.max_train_minutes} if tc.max_train_minutes > 0 else None,
        log_every_n_steps=max(1, min(50, n_train_batches)), num_sanity_val_steps=0,
        gradient_clip_val=tc.gradient_clip_val if tc.gradient_clip_val > 0 else None,
        gradient_clip_algorithm="norm")
