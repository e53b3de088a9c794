"""How well overlapping predicted patches agree in phase: a ground-truth-free check.

Two patches whose centres are close see the same object pixels where their central crops
(the part the position stitching keeps, ``crop`` px square) overlap. For every pair whose
crops overlap by at least half their area and whose centres differ by whole pixels, the
overlap of patch ``a`` and patch ``b`` is compared: the pair's constant phase (the angle
of ``sum(a conj(b))``, which a pattern cannot fix) is removed, and the RMS of the phase of
``a conj(b)``, weighted by ``|a| |b|``, is the pair's disagreement in radians. Patches cut
from one object agree (0); patches that each lean their own way do not.

On the grid-lines test scan (a 10-px raster, crop 32: each patch's pairs are its four
axis neighbours) the runs whose phase stayed weak disagreed more than those that found
it (``docs/results/2026-12-speed.md``). Pairs at sub-pixel offsets (a spiral scan) are
skipped: the count of pairs used is returned with the values.

A study writes the median of test object 0 to ``metrics.json`` (``neighbour_disagreement``,
:func:`study_disagreement`). Centres are ``(x, y)`` in object pixels; patch pixel ``(r, c)``
of a patch centred at ``(x, y)`` is object pixel ``(y - N/2 + r, x - N/2 + c)``
(``ptycho.geometry.patches``).
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ptycho.config.config import InferenceConfig


def _pairs(centres: np.ndarray, crop: int) -> np.ndarray:
    """(i, j) of the pairs whose crops overlap by at least half their area and whose
    offset is whole pixels."""
    pairs = cKDTree(centres).query_pairs(r=crop / 2, p=np.inf, output_type="ndarray")
    if pairs.size == 0:
        return pairs.reshape(0, 2)
    d = np.abs(centres[pairs[:, 1]] - centres[pairs[:, 0]])
    whole = np.all(np.abs(d - np.round(d)) < 1e-6, axis=1)
    overlap = np.prod(np.clip(crop - np.round(d), 0, None), axis=1)
    return pairs[whole & (overlap >= crop * crop / 2)]


def _disagreement(a: np.ndarray, b: np.ndarray) -> float:
    z = a * np.conj(b)
    w = np.abs(z)
    if w.sum() == 0:
        return float("nan")
    phase = np.angle(z * np.exp(-1j * np.angle(z.sum())))
    return float(np.sqrt(np.sum(w * phase ** 2) / w.sum()))


def neighbour_disagreement(patches: np.ndarray, centres: np.ndarray, crop: int) -> dict:
    """``{"median", "values", "pairs", "crop"}``: the phase disagreement (rad) of every
    overlapping pair of the module docstring, their median (None without a pair), and
    ``pairs`` (n, 2) indices; ``patches`` (n, N, N) complex, ``centres`` (n, 2) (x, y),
    ``crop`` the stitching's central crop (1 .. N)."""
    p = np.asarray(patches)
    c = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    if p.ndim != 3 or p.shape[0] != c.shape[0] or p.shape[1] != p.shape[2]:
        raise ValueError(f"patches {p.shape} and centres {c.shape}: expected (n, N, N) and (n, 2)")
    N = p.shape[-1]
    if not 1 <= int(crop) <= N:
        raise ValueError(f"crop {crop}: allowed 1 .. {N} (the patch size)")
    lo = (N - int(crop)) // 2
    hi = lo + int(crop)
    pairs = _pairs(c, int(crop))
    values = []
    for i, j in pairs:
        dx, dy = (int(v) for v in np.round(c[j] - c[i]))
        r0, r1 = max(lo, lo + dy), min(hi, hi + dy)
        c0, c1 = max(lo, lo + dx), min(hi, hi + dx)
        values.append(_disagreement(p[i, r0:r1, c0:c1], p[j, r0 - dy:r1 - dy, c0 - dx:c1 - dx]))
    v = np.asarray(values, dtype=np.float64)
    return {"median": float(np.nanmedian(v)) if v.size else None, "values": v,
            "pairs": pairs, "crop": int(crop)}


def study_disagreement(patches: np.ndarray, centres: np.ndarray,
                       inference: InferenceConfig) -> dict:
    """:func:`neighbour_disagreement` of a study's predicted ``patches`` (n, C, N, N) at
    ``centres`` (n, C, 2), with the central crop of ``inference``'s position stitching
    (``crop_for``)."""
    p = np.asarray(patches)
    N = p.shape[-1]
    return neighbour_disagreement(p.reshape(-1, N, N), np.asarray(centres).reshape(-1, 2),
                                  inference.crop_for(N))
