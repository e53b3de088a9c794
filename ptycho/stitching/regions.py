"""Where the patches of a scan land: coverage, the fully covered box, canvas sizing, and
the checks that a canvas fits in memory and inside a given image."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ptycho.geometry.rounding import round_half_up
from ptycho.stitching._common import _check_int


def _box_sum(counts: np.ndarray, k: int, out_shape: tuple[int, int]) -> np.ndarray:
    """Sum of ``counts`` over the k x k window whose top-left is each pixel, shifted so
    that result[r, c] = number of windows (with top-left in ``counts``) covering (r, c)."""
    H, W = out_shape
    # counts[r, c] = number of crop windows whose top-left is (r, c); a window covers
    # (R, C) iff R-k < r <= R and C-k < c <= C. Use 2-D cumulative sums.
    cs = np.zeros((H + 1, W + 1), dtype=np.int64)
    cs[1:, 1:] = counts.cumsum(0).cumsum(1)
    R = np.arange(H)
    C = np.arange(W)
    r_hi = R + 1
    r_lo = np.maximum(R + 1 - k, 0)
    c_hi = C + 1
    c_lo = np.maximum(C + 1 - k, 0)
    return (
        cs[r_hi[:, None], c_hi[None, :]]
        - cs[r_lo[:, None], c_hi[None, :]]
        - cs[r_hi[:, None], c_lo[None, :]]
        + cs[r_lo[:, None], c_lo[None, :]]
    )


def _window_coverage(r0: np.ndarray, c0: np.ndarray, k: int, shape: tuple) -> np.ndarray:
    """(H, W) int64 count of the k x k windows with top-left corners ``(r0, c0)`` (inside):
    windows counted by corner, then a k x k box sum (exact integers)."""
    H, W = shape
    corner_counts = np.bincount(r0 * W + c0, minlength=H * W).reshape(H, W)
    return _box_sum(corner_counts, k, (H, W))


def covered_box(coverage: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box (row0, col0, height, width) of the covered pixels, shrunk (one
    border row or column at a time, the least covered first) until every pixel in it is
    covered."""
    covered = np.asarray(coverage) > 0
    rows, cols = np.flatnonzero(covered.any(1)), np.flatnonzero(covered.any(0))
    if rows.size == 0:
        raise ValueError("no pixel of the canvas is covered by a patch")
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    while r1 - r0 > 1 and c1 - c0 > 1 and not covered[r0:r1, c0:c1].all():
        fractions = (covered[r0, c0:c1].mean(), covered[r1 - 1, c0:c1].mean(),
                     covered[r0:r1, c0].mean(), covered[r0:r1, c1 - 1].mean())
        side = int(np.argmin(fractions))
        r0, r1, c0, c1 = (r0 + (side == 0), r1 - (side == 1), c0 + (side == 2), c1 - (side == 3))
    return int(r0), int(c0), int(r1 - r0), int(c1 - c0)


def scan_region(centres, N: int, crop: int | None = None) -> tuple[int, int, int, int]:
    """The scored region of a scan without a grid: (row0, col0, height, width) in the
    centres' frame, the :func:`covered_box` of the coverage :func:`stitch_by_positions`
    gives for these ``centres`` and ``crop`` (every pixel in it is covered by a used patch
    region). Network and iterative rows of a study are scored on this one region."""
    shape, (ox, oy) = canvas_for_positions(centres, N, crop=crop)
    k = N if crop is None else _check_int(crop, "crop", 1, N)
    o = (N - k) // 2
    xy = round_half_up(np.asarray(centres, dtype=np.float64).reshape(-1, 2))
    r0 = xy[:, 1] + oy - N // 2 + o
    c0 = xy[:, 0] + ox - N // 2 + o
    row0, col0, h, w = covered_box(_window_coverage(r0, c0, k, shape))
    return row0 - oy, col0 - ox, h, w


def canvas_for_positions(centres, N: int, crop: int | None = None, margin: int = 0):
    """Smallest canvas holding every used patch pixel, and the shift that puts it at 0.

    Args:
        centres: array (..., 2), (x, y) patch centres in object pixels (may be negative).
        N: patch size.
        crop: used central region as in :func:`stitch_by_positions` (default N).
        margin: extra empty pixels on every side (>= 0).

    Returns:
        ``(canvas_shape, origin)``:

        * ``canvas_shape``: (H, W) ints.
        * ``origin``: (ox, oy) ints, the (x, y) shift to add to the centres:
          ``stitch_by_positions(patches, centres + np.asarray(origin), canvas_shape,
          crop=crop)`` then fits exactly (the used region's first row/column lands at
          ``margin``). Canvas pixel ``(r, c)`` is object pixel ``(r - oy, c - ox)``.
          The shift is an integer, so the half-up rounding of the centres is unchanged.
    """
    N = _check_int(N, "N", 1)
    k = N if crop is None else _check_int(crop, "crop", 1, N)
    margin = _check_int(margin, "margin", 0)
    o = (N - k) // 2
    c = np.asarray(centres, dtype=np.float64)
    if c.ndim < 1 or c.shape[-1] != 2 or c.size == 0:
        raise ValueError(f"centres: expected shape (n, 2) with n >= 1, got shape {c.shape}")
    c = c.reshape(-1, 2)
    if not np.all(np.isfinite(c)):
        raise ValueError("centres: contains NaN or inf; allowed finite (x, y) pixel values")
    xy = round_half_up(c)
    lo = xy.min(axis=0) - N // 2 + o  # (x, y) of the first used column / row
    hi = xy.max(axis=0) - N // 2 + o + k  # one past the last
    ox, oy = (int(margin - v) for v in lo)
    W, H = (int(v) for v in hi - lo + 2 * margin)
    return (H, W), (ox, oy)


# Bytes per canvas pixel while a scan is stitched: stitch_by_positions peaks at 48 (the
# complex128 sum, float64 weights, int64 coverage and its cumulative sums; measured with
# tracemalloc) while the reconstruction before it keeps its complex64 canvas and mask (9).
STITCH_BYTES_PER_PIXEL = 64
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def memory_bytes() -> int:
    """This process's memory: the physical memory (``os.sysconf``), or the cgroup's limit
    (a container's or a batch job's) when that is lower."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for f in _CGROUP_LIMITS:
        try:
            text = Path(f).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return int(total)


def _gib(n: float) -> str:
    return f"{n / 2 ** 30:.3g} GiB"


def check_canvas_memory(centres, N: int, crop: int | None = None, canvas_shape=None,
                        memory: int | None = None) -> None:
    """Refuse (one-line ValueError) stitching whose canvas would need more than half of
    ``memory`` (default :func:`memory_bytes`) at :data:`STITCH_BYTES_PER_PIXEL`: the
    canvas of the ``centres`` (:func:`canvas_for_positions`), or ``canvas_shape`` (a ground
    truth the patches are stitched onto) when that is larger."""
    shape, _ = canvas_for_positions(centres, N, crop=crop)
    if canvas_shape is not None and canvas_shape[0] * canvas_shape[1] > shape[0] * shape[1]:
        shape = tuple(int(v) for v in canvas_shape[:2])
    need = shape[0] * shape[1] * STITCH_BYTES_PER_PIXEL
    memory = memory_bytes() if memory is None else int(memory)
    if need > memory // 2:
        span = np.ptp(np.asarray(centres, np.float64).reshape(-1, 2), axis=0)
        raise ValueError(f"positions span {span[0]:.6g} x {span[1]:.6g} px (x, y): the "
                         f"stitched canvas ({shape[0]} x {shape[1]} px) would need "
                         f"{_gib(need)} ({STITCH_BYTES_PER_PIXEL} bytes per pixel while "
                         f"stitching) (allowed: up to {_gib(memory // 2)}, half of this "
                         f"machine's {_gib(memory)} of memory; wrong position units?)")


def patch_extent(centres, N: int, crop: int | None = None) -> tuple[int, int, int, int]:
    """``(col0, col1, row0, row1)``: the object pixels (ends excluded) that stitching the
    ``crop`` regions of N x N patches at ``centres`` writes."""
    (H, W), (ox, oy) = canvas_for_positions(centres, N, crop=crop)
    return -ox, W - ox, -oy, H - oy
