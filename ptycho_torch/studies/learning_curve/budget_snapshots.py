"""The callback that scores the network at each budget while one training runs."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch
from lightning.pytorch.callbacks import Callback

from ptycho_torch.studies.learning_curve.config import BUDGET_KINDS

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    """The generator's weights (CPU copies) when training crossed ``budget``."""

    budget: float
    state: dict
    minutes: float
    steps: int
    epochs: float


class BudgetSnapshots(Callback):
    """Copy the generator's ``state_dict`` to the CPU when training crosses each budget.

    ``steps``: after the optimizer step that makes ``global_step == budget``. ``epochs``:
    at the end of the epoch that completes the budget. ``minutes``: after the first batch
    at which the training clock (from fit start, minus the time spent in this callback)
    has reached the budget; after the last one training is stopped. Copies are made under
    ``torch.no_grad`` without touching any random number generator, so snapshots do not
    change the training result.
    """

    def __init__(self, kind: str, budgets) -> None:
        if kind not in BUDGET_KINDS:
            raise ValueError(f"kind={kind!r} (allowed: {', '.join(BUDGET_KINDS)})")
        self.kind = kind
        self.budgets = tuple(budgets)
        self.snapshots: list[Snapshot] = []
        self.snapshot_s = 0.0
        self._t0 = time.perf_counter()

    @property
    def pending(self) -> list:
        return list(self.budgets[len(self.snapshots):])

    def minutes(self) -> float:
        """Training wall time so far, in minutes, without the snapshot time."""
        return (time.perf_counter() - self._t0 - self.snapshot_s) / 60.0

    def on_fit_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()
        self.snapshot_s = 0.0
        self.snapshots = []

    def _take(self, pl_module, budgets, steps: int, epochs: float) -> None:
        minutes = self.minutes()
        t = time.perf_counter()
        with torch.no_grad():
            state = {k: v.detach().to("cpu", copy=True)
                     for k, v in pl_module.generator.state_dict().items()}
        for b in budgets:  # several minute budgets may be crossed by one slow batch
            self.snapshots.append(Snapshot(budget=b, state=state, minutes=minutes,
                                           steps=int(steps), epochs=float(epochs)))
            log.info("learning curve: snapshot at %s %s (step %d, epoch %.3f, %.2f min)",
                     _fmt_budget(b), self.kind, steps, epochs, minutes)
        self.snapshot_s += time.perf_counter() - t

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        pending = self.pending
        if not pending or self.kind == "epochs":
            return
        steps = int(trainer.global_step)
        n_batches = trainer.num_training_batches
        epochs = int(trainer.current_epoch) + (
            (batch_idx + 1) / n_batches if n_batches and math.isfinite(n_batches) else 0.0)
        if self.kind == "steps":
            crossed = [b for b in pending if steps >= b]
        else:
            now = self.minutes()
            crossed = [b for b in pending if now >= b]
        if crossed:
            self._take(pl_module, crossed, steps, epochs)
            if self.kind == "minutes" and not self.pending:
                trainer.should_stop = True

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        pending = self.pending
        if self.kind != "epochs" or not pending:
            return
        done = int(trainer.current_epoch) + 1
        crossed = [b for b in pending if done >= b]
        if crossed:
            self._take(pl_module, crossed, int(trainer.global_step), float(done))


def _fmt_budget(b) -> str:
    return f"{b:g}" if isinstance(b, float) else str(b)
