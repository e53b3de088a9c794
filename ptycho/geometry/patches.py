"""Cutting N x N object patches at scan positions, zero outside the object.

Conventions:

* ``centres`` has shape ``(n, C, 2)`` (any leading shape ``(..., 2)`` works) and holds
  ``(x, y) = (column, row)`` in object pixels, as everywhere in the project.
* A centre is rounded to the nearest pixel with ``floor(c + 0.5)`` (halves round up), and
  the patch covers rows ``y - N//2 .. y - N//2 + N - 1`` and columns
  ``x - N//2 .. x - N//2 + N - 1`` of the object (the same placement as the stitching in
  :func:`ptycho_torch.core.overlap.merge_patches`, whose patch centre is ``N//2``).
* :func:`subpixel_cuts` is the cut of the far-field model at a sub-pixel centre, the one
  the simulators use (:func:`ptycho.forward.expected_intensity`): the patch starts at the
  integer corner ``floor(c - N//2)`` and the probe is moved by the fractional rest
  ``f = (c - N//2) - floor(c - N//2)`` in ``[0, 1)``, ``P(r - f)``. Data residuals of a whole
  object use it (:func:`ptycho_torch.core.residual.object_residual`). For integer centres it
  equals the rounded cut with ``f = 0``.
* Pixels of a patch that fall outside the object are **zero**; they are not copied from
  the nearest edge pixel. :func:`edge_patterns` counts the patterns that reach past the
  edge, so a caller can say how many patterns that zero padding touched.
"""
from __future__ import annotations

import numpy as np

from ptycho.geometry.rounding import round_half_up
__all__ = ["rounded_corners", "edge_patterns", "object_patches", "subpixel_cuts"]


def rounded_corners(centres: np.ndarray, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer ``(row0, col0)`` of the top-left pixel of each patch, shape ``centres[..., 0]``."""
    c = np.asarray(centres, dtype=np.float64)
    if c.ndim < 1 or c.shape[-1] != 2:
        raise ValueError(f"centres have shape {c.shape} (expected (..., 2) holding (x, y))")
    if not np.all(np.isfinite(c)):
        raise ValueError("centres hold non-finite values (allowed: finite (x, y) pixels)")
    r = round_half_up(c)
    return r[..., 1] - N // 2, r[..., 0] - N // 2


def _inside(shape: tuple, centres: np.ndarray, N: int) -> np.ndarray:
    r0, c0 = rounded_corners(centres, N)
    H, W = int(shape[0]), int(shape[1])
    return (r0 >= 0) & (c0 >= 0) & (r0 + N <= H) & (c0 + N <= W)


def edge_patterns(shape: tuple, centres: np.ndarray, N: int) -> int:
    """Number of patterns (entries of ``centres[..., 0]``, i.e. ``n * C``) whose N x N
    patch reaches past an edge of an object of ``shape`` ``(H, W, ...)``."""
    return int(np.count_nonzero(~_inside(shape, centres, N)))


def object_patches(obj: np.ndarray, centres: np.ndarray, N: int) -> np.ndarray:
    """``(..., N, N)`` patches of ``obj`` (H, W) at the rounded ``centres`` (..., 2) (x, y).

    Same dtype as ``obj``; pixels outside the object are 0 (see the module docstring).
    """
    obj = np.asarray(obj)
    if obj.ndim != 2:
        raise ValueError(f"object has shape {obj.shape} (expected a 2-D (H, W) object)")
    if not (isinstance(N, (int, np.integer)) and N >= 1):
        raise ValueError(f"patch size N={N!r} is out of range (allowed: an integer >= 1)")
    r0, c0 = rounded_corners(centres, N)
    return _cut(obj, r0, c0, N)


def subpixel_cuts(obj: np.ndarray, centres: np.ndarray, N: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(patches, shifts)``: the ``(..., N, N)`` patches of ``obj`` at the integer corners
    ``floor(c - N//2)`` of ``centres`` (..., 2) (x, y) and the ``(..., 2)`` fractional
    ``(fx, fy)`` in ``[0, 1)`` by which the probe moves for each (module docstring)."""
    obj = np.asarray(obj)
    if obj.ndim != 2:
        raise ValueError(f"object has shape {obj.shape} (expected a 2-D (H, W) object)")
    c = np.asarray(centres, dtype=np.float64)
    if c.ndim < 1 or c.shape[-1] != 2 or not np.all(np.isfinite(c)):
        raise ValueError(f"centres have shape {c.shape} or non-finite values (expected finite "
                         "(..., 2) holding (x, y))")
    corner = c - N // 2
    i0 = np.floor(corner)
    shifts = corner - i0
    i0 = i0.astype(np.int64)
    return _cut(obj, i0[..., 1], i0[..., 0], N), shifts


def _cut(obj: np.ndarray, r0: np.ndarray, c0: np.ndarray, N: int) -> np.ndarray:
    """The N x N patches with top-left pixels ``(r0, c0)``, zero outside ``obj``."""
    ar = np.arange(N)
    rows = r0[..., None, None] + ar[:, None]
    cols = c0[..., None, None] + ar[None, :]
    H, W = obj.shape
    valid = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
    out = obj[np.clip(rows, 0, H - 1), np.clip(cols, 0, W - 1)]
    return np.where(valid, out, np.zeros((), dtype=obj.dtype)).astype(obj.dtype, copy=False)
