"""The phase gauges of a reconstructed probe, fixed against a reference probe (numpy).

Far-field intensities do not see two phase degrees of freedom of a probe estimate:

* **constant phase**: ``|F(O P e^{i t})|^2 = |F(O P)|^2`` for every mode alone (the modes add
  incoherently), so each mode's constant phase is free and the object is untouched;
* **linear phase ramp**: ``(O e^{+i k.u}, P e^{-i k.r})`` gives, at a patch with corner
  ``c`` (``u = c + r``), the exit wave ``O P e^{i k.c}``: the same intensities, with a
  constant phase per position. The ramp can drift between object and probe.

An iterative refinement (Pty-chi's LSQML) lets both drift, and a score or a network trained
with that probe inherits the drift. :func:`fix_phase_gauge` removes them as
:mod:`ptycho_torch.core.learned_probe` does for the learned probe: the intensity centroid of the
probe's far field (summed over modes, a circular mean in frequency pixels) is moved to the
reference's by a ramp on the probe, the opposite ramp goes on the object (over its own pixel
grid, ``u = (row, col)``; a fractional ramp leaks, so the ramp is solved for with
``scipy.optimize.root``), and each mode is turned so that ``<P_ref_m, P_m>`` is real and
positive. The exit waves change by a constant phase per position only; no pattern changes.

Conventions: probes are ``(modes, N, N)`` or ``(N, N)``, ``[row, col]``, window centre
``(N//2, N//2)``; ``k = (ky, kx)`` in frequency pixels (cycles per window).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize

__all__ = ["ProbeGauge", "far_field_centroid", "fix_phase_gauge"]

_TOLERANCE = 1e-10


@dataclass(frozen=True)
class ProbeGauge:
    """What :func:`fix_phase_gauge` removed: the ramp ``(ky, kx)`` in frequency pixels taken
    off the probe (and put on the object) and each mode's constant phase (radians)."""

    ramp: tuple[float, float]
    phases: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"ramp_frequency_px": [float(v) for v in self.ramp],
                "mode_phases_rad": [float(v) for v in self.phases]}


def _modes(probe) -> np.ndarray:
    p = np.asarray(probe).astype(np.complex128)
    if p.ndim == 2:
        p = p[None]
    if p.ndim != 3 or p.shape[-1] != p.shape[-2]:
        raise ValueError(f"probe: shape {np.asarray(probe).shape} (expected (N, N) or "
                         "(modes, N, N))")
    return p


def far_field_centroid(probe) -> np.ndarray:
    """Intensity centroid ``(ky, kx)`` of ``fftshift(fft2(probe))`` summed over modes, in
    frequency pixels from index 0, as a circular mean (a ramp of k whole pixels moves it by
    exactly k)."""
    p = _modes(probe)
    N = p.shape[-1]
    w = (np.abs(np.fft.fftshift(np.fft.fft2(p, norm="ortho"), axes=(-2, -1))) ** 2).sum(0)
    if not w.sum() > 0:
        raise ValueError("probe: zero intensity (expected a probe with some intensity)")
    angle = np.arange(N) * (2 * math.pi / N)
    ky = math.atan2(float((w.sum(1) * np.sin(angle)).sum()), float((w.sum(1) * np.cos(angle)).sum()))
    kx = math.atan2(float((w.sum(0) * np.sin(angle)).sum()), float((w.sum(0) * np.cos(angle)).sum()))
    return np.array([ky, kx]) * (N / (2 * math.pi))


def _wrapped(shift: np.ndarray, N: int) -> np.ndarray:
    return (shift + N / 2) % N - N / 2


def fix_phase_gauge(probe, obj, reference) -> tuple[np.ndarray, np.ndarray | None, ProbeGauge]:
    """``(probe, obj, gauge)`` with the probe's phase ramp and constant phases fixed against
    ``reference`` (module docstring). ``probe`` and ``reference`` have the same shape,
    ``obj`` is a 2-D complex object or None. Dtypes and shapes are kept."""
    p = _modes(probe)
    ref = _modes(reference)
    if ref.shape != p.shape:
        raise ValueError(f"reference: shape {ref.shape} does not match the probe's {p.shape}")
    N = p.shape[-1]
    target = far_field_centroid(ref)
    ax = np.arange(N) - N // 2

    def ramped(k):
        return p * np.exp(-2j * math.pi * (k[0] * ax[:, None] + k[1] * ax[None, :]) / N)

    # a fractional ramp leaks, so one step misses the target: solve for the ramp
    solved = optimize.root(lambda k: _wrapped(far_field_centroid(ramped(k)) - target, N),
                           _wrapped(far_field_centroid(p) - target, N), tol=_TOLERANCE)
    k = solved.x
    p = ramped(k)
    overlaps = np.einsum("mij,mij->m", np.conj(ref), p)
    phases = np.angle(overlaps)
    p = p * np.exp(-1j * phases)[:, None, None]
    out_probe = (p[0] if np.asarray(probe).ndim == 2 else p).astype(np.asarray(probe).dtype)
    out_obj = None
    if obj is not None:
        o = np.asarray(obj)
        rows, cols = np.arange(o.shape[-2]), np.arange(o.shape[-1])
        ramp = np.exp(2j * math.pi * (k[0] * rows[:, None] + k[1] * cols[None, :]) / N)
        out_obj = (o.astype(np.complex128) * ramp).astype(o.dtype)
    return out_probe, out_obj, ProbeGauge((float(k[0]), float(k[1])), tuple(float(v) for v in phases))
