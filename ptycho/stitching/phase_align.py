"""Per-patch constant phase alignment before averaging (the phase ambiguity)."""
from __future__ import annotations

import numpy as np


def _patch_weight(w, i: int):
    """Weight (scalar or (k, k) map) of patch ``i``, 1.0 when unweighted."""
    if w is None:
        return 1.0
    if w.ndim == 1:
        return w[i]
    return w[0] if w.shape[0] == 1 else w[i]


def _align_phases(used, r0, c0, k: int, shape, w) -> np.ndarray:
    """Per-patch constant phases ``theta`` (n,) such that ``used * exp(-1j*theta)`` agree
    on their overlaps (see :func:`stitch_by_positions`, ``align_phase``)."""
    n = used.shape[0]
    H, W = shape
    acc = np.zeros((H, W), dtype=np.complex128)  # weighted sum of aligned patches
    cnt = np.zeros((H, W), dtype=np.int64)
    theta = np.zeros(n, dtype=np.float64)
    # Visit patches by distance from the one nearest the scan's centroid, so every patch
    # (of a connected scan) tends to overlap patches already placed.
    centre = np.stack([r0, c0], axis=1).astype(np.float64)
    seed = int(np.argmin(((centre - centre.mean(axis=0)) ** 2).sum(axis=1)))
    order = np.argsort(((centre - centre[seed]) ** 2).sum(axis=1), kind="stable")

    # Pass 1: greedy, each patch aligned to the sum of the patches placed before it.
    for i in order:
        sl = (slice(r0[i], r0[i] + k), slice(c0[i], c0[i] + k))
        p = used[i] * _patch_weight(w, i)
        if cnt[sl].any():
            z = np.vdot(acc[sl], p)  # sum conj(canvas) * patch
            if z != 0:
                theta[i] = np.angle(z)
        acc[sl] += p * np.exp(-1j * theta[i])
        cnt[sl] += 1

    # Pass 2: Gauss-Seidel refinement, each patch re-aligned to all the others
    # (leave-one-out: its own contribution is removed from the sum first).
    for i in order:
        sl = (slice(r0[i], r0[i] + k), slice(c0[i], c0[i] + k))
        if cnt[sl].max() < 2:
            continue  # overlaps nothing: its phase is arbitrary, keep it
        p = used[i] * _patch_weight(w, i)
        rest = acc[sl] - p * np.exp(-1j * theta[i])
        z = np.vdot(rest, p)
        if z != 0:
            theta[i] = np.angle(z)
        acc[sl] = rest + p * np.exp(-1j * theta[i])

    # Fix the free global phase: zero circular mean rotation (consistent input -> ~0).
    m = np.exp(1j * theta).sum()
    if abs(m) > 1e-12 * n:
        theta -= np.angle(m)
    return theta
