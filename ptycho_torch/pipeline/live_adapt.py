"""Online adaptation of ``ptycho-live`` (``--adapt``): the model keeps learning from the scan
it follows, without labels.

:class:`FrameWindow` keeps the most recent ``--adapt-window`` frames (amplitudes in the
model's units, their positions and frame numbers) in a ring buffer, so its memory is that of
the window whatever the length of the scan. Every ``--adapt-every`` stitched frames,
:class:`LiveAdapter` runs one round: ``--adapt-steps`` Adam steps (learning rate
``--adapt-lr``, its own optimizer, kept from round to round) on random batches of
``--adapt-batch-size`` frames of the window, each step minimising the model's own training
loss (:meth:`~ptycho_torch.model.lightning_module.PtychoPINN_Lightning.physics_loss`: the
generator's object through the model's probe against the measured amplitudes, over the
scan's measured pixels), under the model's ``--precision`` (``bf16-mixed``: the autocast
region training uses). Only the generator's weights move; the probe (learned or not) stays
as it is. The model is back in eval mode after each round, and the chunks that come after
it are predicted by the adapted model; what the canvas holds stays as it was stitched.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ptycho.config.live_config import LiveConfig
from ptycho_torch.core.precision import autocast

__all__ = ["FrameWindow", "LiveAdapter"]


class FrameWindow:
    """The last ``size`` frames added: ``amp`` (size, N, N) float32, ``pos`` (size, 2) and
    ``frame`` (size,) numbers, filled cyclically."""

    def __init__(self, size: int, N: int):
        self.size = int(size)
        self.amp = np.zeros((self.size, N, N), np.float32)
        self.pos = np.zeros((self.size, 2), np.float64)
        self.frame = np.full(self.size, -1, np.int64)
        self.seen = 0                 # frames ever added

    def __len__(self) -> int:
        return min(self.seen, self.size)

    @property
    def nbytes(self) -> int:
        return int(self.amp.nbytes + self.pos.nbytes + self.frame.nbytes)

    def add(self, amp: np.ndarray, positions: np.ndarray, frames: np.ndarray) -> None:
        """Append frames (amplitudes (k, N, N), positions (k, 2), numbers (k,)), oldest
        first; only the last ``size`` of them can stay."""
        k = len(amp)
        skip = max(0, k - self.size)
        slots = (self.seen + np.arange(skip, k)) % self.size
        self.amp[slots] = amp[skip:]
        self.pos[slots] = positions[skip:]
        self.frame[slots] = frames[skip:]
        self.seen += k

    def ordered(self) -> np.ndarray:
        """The slots of the frames held, oldest first."""
        n = len(self)
        return (self.seen - n + np.arange(n)) % self.size


class LiveAdapter:
    """The rounds of ``--adapt`` on one model (module docstring); :meth:`summary` is
    ``live.json``'s ``adaptation``."""

    def __init__(self, model, cfg: LiveConfig, N: int, bad_pixels=None, seed: int = 0):
        self.model, self.cfg = model, cfg
        self.window = FrameWindow(cfg.adapt_window, N)
        self.params = [p for p in model.generator.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(self.params, lr=cfg.adapt_lr)
        self.device = next(iter(self.params)).device
        measured = (np.ones((N, N), bool) if bad_pixels is None
                    else ~np.asarray(bad_pixels, bool))   # the scan's, not the training scan's
        self.mask = torch.as_tensor(measured, dtype=torch.float32, device=self.device)
        self.rng = np.random.default_rng(seed)
        self.since = 0                # frames added since the last round
        self.rounds = self.steps = 0
        self.seconds = 0.0
        self.first: dict | None = None
        self.last: dict | None = None

    def until_next(self) -> int:
        """Frames still to add before the next round is due."""
        return max(1, self.cfg.adapt_every - self.since)

    def add(self, amp: np.ndarray, positions: np.ndarray, frames: np.ndarray) -> None:
        self.window.add(amp, positions, frames)
        self.since += len(amp)

    def due(self) -> bool:
        return self.since >= self.cfg.adapt_every and len(self.window) > 0

    def _inputs(self, slots: np.ndarray):
        x = torch.from_numpy(self.window.amp[slots][:, None]).to(self.device)
        n = x.shape[0]
        positions = torch.zeros((n, 1, 1, 2), dtype=torch.float32, device=self.device)
        scale = torch.full((n, 1, 1, 1), float(self.model.data_config.input_scale),
                           dtype=torch.float32, device=self.device)
        return x, positions, scale

    def loss(self, slots: np.ndarray) -> torch.Tensor:
        """The model's physics loss on the window's frames in ``slots`` (with gradients)."""
        with autocast(self.model.precision, self.device.type):
            return self.model.physics_loss(*self._inputs(slots), mask=self.mask)

    def round(self) -> dict:
        """One adaptation round; returns the physics loss of its first batch before the
        first step and after the last (``{"before", "after"}``)."""
        t0 = time.perf_counter()
        held = len(self.window)
        order = self.window.ordered()
        draws = [order[self.rng.choice(held, min(self.cfg.adapt_batch_size, held),
                                       replace=False)] for _ in range(self.cfg.adapt_steps)]
        self.model.train()
        before = None
        try:
            for slots in draws:
                self.opt.zero_grad(set_to_none=True)
                loss = self.loss(slots)
                before = float(loss.detach()) if before is None else before
                loss.backward(inputs=self.params)
                self.opt.step()
            self.model.eval()
            with torch.no_grad():
                after = float(self.loss(draws[0]))
        finally:
            self.model.eval()
            self.opt.zero_grad(set_to_none=True)
        self.rounds, self.steps = self.rounds + 1, self.steps + len(draws)
        self.since = 0
        self.seconds += time.perf_counter() - t0
        self.last = {"before": before, "after": after}
        self.first = self.first or self.last
        return self.last

    def summary(self) -> dict:
        c = self.cfg
        return {"rounds": self.rounds, "steps": self.steps, "seconds": round(self.seconds, 4),
                "every_frames": c.adapt_every, "window": c.adapt_window,
                "batch_size": c.adapt_batch_size, "lr": c.adapt_lr,
                "window_bytes": self.window.nbytes,
                "loss_first_round": self.first, "loss_last_round": self.last,
                "note": "the physics loss of each round's first batch, before the round's "
                        "first step and after its last"}
