"""The weight average a training run validates, checkpoints and reconstructs with.

``--weight-average ema`` adds Lightning's :class:`~lightning.pytorch.callbacks.EMAWeightAveraging`:
after every optimizer step the averaged weights move by ``1 - ema_decay`` towards the
current ones (buffers too). Validation runs on the average (so the plateau schedule and
early stopping see it), every checkpoint's ``state_dict`` holds it (the current weights and
the averaging state ride along, so ``--resume`` continues both), and at the end of training
the average replaces the weights. ``none`` trains and reconstructs with the last weights.
"""
from __future__ import annotations

from lightning.pytorch.callbacks import EMAWeightAveraging

from ptycho.config.config import TrainingConfig


def _ema(tc: TrainingConfig) -> EMAWeightAveraging:
    return EMAWeightAveraging(decay=tc.ema_decay, update_every_n_steps=1, use_buffers=True)


# keys = ptycho.config.choices.WEIGHT_AVERAGES (tested); None: no average
WEIGHT_AVERAGES = {"none": None, "ema": _ema}


def weight_average_callbacks(tc: TrainingConfig) -> list:
    """The callbacks of ``tc.weight_average`` (none or one)."""
    make = WEIGHT_AVERAGES[tc.weight_average]
    return [] if make is None else [make(tc)]
