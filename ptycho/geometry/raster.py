"""The regular raster scan of a square object and its gridsize x gridsize groups.

Conventions: a scan of an ``object_size`` x ``object_size`` object with patches of size
``N`` at ``stride`` has ``n_side = (object_size - N) // stride + 1`` positions per side;
patch ``i`` (row-major) has its top-left corner at ``scan_top_left(...)[i]`` = (row, col),
and its centre is that corner plus ``N // 2``. Groups of ``gridsize`` x ``gridsize``
neighbouring patches are numbered row-major too (:func:`group_indices`). This module imports
nothing from the project: the config family and the simulator both build on it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["n_scan_side", "n_groups", "scan_top_left", "group_indices", "group_coords",
           "stride_rule"]


def n_scan_side(object_size: int, N: int, stride: int) -> int:
    """Scan positions per side: ``(object_size - N)//stride + 1``."""
    return (int(object_size) - int(N)) // int(stride) + 1


def n_groups(object_size: int, N: int, stride: int, gridsize: int = 1) -> int:
    """Groups per object: ``(n_side - gridsize + 1)**2`` (0 if they do not fit)."""
    m = n_scan_side(object_size, N, stride) - int(gridsize) + 1
    return max(m, 0) ** 2


def scan_top_left(object_size: int, N: int, stride: int) -> np.ndarray:
    """Top-left (row, col) of every patch, int64 (n_side*n_side, 2), row-major order."""
    n = n_scan_side(object_size, N, stride)
    pos = np.arange(n, dtype=np.int64) * int(stride)
    rr, cc = np.meshgrid(pos, pos, indexing="ij")
    return np.stack([rr.ravel(), cc.ravel()], axis=1)


def group_indices(n_side: int, gridsize: int) -> np.ndarray:
    """Patch indices of each g x g group, int64 (n_groups, g*g).

    Group (i, j) for i, j in 0..n_side-g (row-major) holds patches
    ``(i+di)*n_side + (j+dj)`` in channel ``c = di*g + dj``.
    """
    g = int(gridsize)
    m = int(n_side) - g + 1
    if m < 1:
        raise ValueError(f"group_indices: n_side = {n_side} < gridsize = {g} "
                         "(expected n_side >= gridsize)")
    i = np.arange(m)
    d = np.arange(g)
    base = (i[:, None] * n_side + i[None, :]).reshape(-1)          # (m*m,)
    off = (d[:, None] * n_side + d[None, :]).reshape(-1)            # (g*g,)
    return (base[:, None] + off[None, :]).astype(np.int64)


def group_coords(top_left: np.ndarray, group_idx: np.ndarray, N: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Group centre and per-channel relative offsets, (x, y) in object pixels.

    Args:
        top_left: (n_patches, 2) (row, col) from :func:`scan_top_left`.
        group_idx: (n, C) from :func:`group_indices`.
        N: patch size.

    Returns:
        ``(coords_offsets, coords_nominal)``, both float32 (n, C, 2):
        ``coords_offsets[n, c]`` = group centre (mean of its C patch centres, same for
        all c); ``coords_nominal[n, c]`` = patch centre - group centre (zeros for C = 1).
        Absolute patch centre = offsets + nominal.
    """
    tl = np.asarray(top_left, dtype=np.float64)
    centres = np.stack([tl[:, 1] + N // 2, tl[:, 0] + N // 2], axis=-1)   # (x, y)
    c = centres[np.asarray(group_idx)]                                   # (n, C, 2)
    centre = c.mean(axis=1, keepdims=True)
    offsets = np.broadcast_to(centre, c.shape)
    nominal = c - centre
    return offsets.astype(np.float32), nominal.astype(np.float32)


def stride_rule(object_size: int, N: int, stride: int, gridsize: int) -> str | None:
    """Why ``stride`` cannot scan the object (fewer than ``gridsize`` positions per side),
    as the refusal's text after the field name, or None when it can."""
    if n_scan_side(object_size, N, stride) >= gridsize:
        return None
    top = (int(object_size) - int(N)) // max(int(gridsize) - 1, 1)
    return (f"={stride} leaves fewer than gridsize={gridsize} scan positions per side "
            f"(allowed: 1..{top} for object_size={object_size}, N={N})")
