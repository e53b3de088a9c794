"""Frames of a live scan made ready for a model: screened, then in the model's units.

A frame with a non-finite pixel (NaN, inf) or, with a ``saturation`` level, a measured pixel
at or above it, is left out (:meth:`FrameUnits.screen` says why, in one phrase). The rest
become amplitudes exactly as :meth:`ptycho.formats.raw_scan.RawScan.to_dataset` and
:func:`ptycho.formats.model_units.read_in_model_units` make those of a finished scan:
counts ``sqrt(max(c, 0)) / k``, amplitudes ``max(a, 0) / k`` (float64 arithmetic, stored
float32), bad pixels 0, with ``k`` the scan-scale rule's factor (the file's probe at the
model probe's total intensity), so a frame reaches the model as it would in
``ptycho-reconstruct``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ptycho.formats.model_units import scan_scale
from ptycho.formats.units import decide_unit

__all__ = ["FrameUnits"]


@dataclass(frozen=True)
class FrameUnits:
    """How the frames of one scan become model inputs (module docstring)."""

    unit: str                  # 'counts' or 'amplitude'
    k: float                   # the scan-scale rule's factor
    bad_pixels: np.ndarray | None
    saturation: float = 0.0    # 0: no check

    @classmethod
    def of(cls, path: str, probe_key: str, probe: np.ndarray, model_probe: np.ndarray,
           first: np.ndarray, unit: str | None, *, bad_pixels=None, saturation: float = 0.0):
        """From the file's probe, the model's and the unit: ``unit`` as given (the flag or
        the file's attribute), else the rule of :mod:`ptycho.formats.units` on the first
        frames ``first``."""
        if unit not in ("counts", "amplitude"):
            unit, _ = decide_unit(np.asarray(first, np.float32), "auto", path, probe_key)
        return cls(unit, scan_scale(path, probe_key, probe, model_probe), bad_pixels,
                   float(saturation))

    def screen(self, patterns: np.ndarray) -> list[str | None]:
        """Per frame: None (kept) or why it is left out."""
        p = np.asarray(patterns, np.float32)
        measured = p if self.bad_pixels is None else p[:, ~self.bad_pixels]
        flat = measured.reshape(len(p), -1)
        nonfinite = (~np.isfinite(flat)).sum(axis=1)
        saturated = ((flat >= self.saturation).sum(axis=1) if self.saturation > 0
                     else np.zeros(len(p), np.int64))
        out = []
        for a, b in zip(nonfinite, saturated):
            out.append(f"{int(a)} NaN or inf pixels" if a else
                       f"{int(b)} saturated pixels (>= {self.saturation:g})" if b else None)
        return out

    def amplitudes(self, patterns: np.ndarray) -> np.ndarray:
        """(n, N, N) float32 amplitudes in the model's units, bad pixels 0."""
        p = np.asarray(patterns, np.float32).astype(np.float64)
        if self.unit == "counts":
            amp = (np.sqrt(np.maximum(p, 0.0)) / self.k).astype(np.float32)
        else:
            amp = np.maximum(p, 0.0).astype(np.float32)
            amp = (amp.astype(np.float64) / self.k).astype(np.float32) if self.k != 1.0 else amp
        if self.bad_pixels is not None:
            amp[:, self.bad_pixels] = 0.0
        return amp
