"""Reassembly of predicted object patches into one object image (numpy only).

Two ways to stitch, both vectorized (no Python loop over patches):

* :func:`stitch_grid_tiles` -- the reference study's method for a regular grid scan at
  gridsize 1: every patch contributes only its central ``stride x stride`` tile and the
  tiles are laid row-major on the scan grid. The result is ``n_side*stride`` square and
  covers the object region given by :func:`grid_region` (clip the ground truth with
  :func:`clip_to_region` before comparing).
* :func:`stitch_by_positions` -- the general method (irregular scans, gridsize > 1):
  shift each patch (or its central ``crop x crop`` region) to its scan position on a
  canvas, sum, and divide by the coverage count (average of overlaps).

Conventions (project-wide): images are indexed ``[row, col]``; positions are
``(x, y) = (column, row)`` in object pixels, in that order (the reference stored offsets
as ``(y, x)``; we do not). A patch of size ``N`` with top-left corner ``(r0, c0)`` has
centre ``(x, y) = (c0 + N//2, r0 + N//2)``. The central ``crop x crop`` region of a patch
starts at patch pixel ``(N - crop)//2`` on both axes, the same offset that
:func:`stitch_grid_tiles` and :func:`grid_region` use, so both methods agree exactly.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "stitch_grid_tiles",
    "grid_region",
    "clip_to_region",
    "stitch_by_positions",
    "stitch_patches",
]

# Elements (patch pixels) summed per np.bincount call in stitch_by_positions. Chunking
# keeps the temporary index array cache-sized and the memory bounded; it is a loop over
# blocks of ~2**20 pixels, not over patches.
_CHUNK_ELEMENTS = 1 << 20


def _as_patch_stack(patches, name: str = "patches") -> np.ndarray:
    """Return ``patches`` as an array of shape (n, N, N) (leading axes flattened)."""
    arr = np.asarray(patches)
    if arr.ndim < 3:
        raise ValueError(
            f"{name}: expected shape (n, N, N) (or (..., N, N)), got shape {arr.shape}"
        )
    if arr.shape[-1] != arr.shape[-2]:
        raise ValueError(f"{name}: patches must be square (N, N), got {arr.shape[-2:]}")
    if arr.shape[-1] < 1:
        raise ValueError(f"{name}: patch size must be >= 1, got shape {arr.shape}")
    return arr.reshape(-1, arr.shape[-2], arr.shape[-1])


def _check_int(value, name: str, lo: int, hi: int | None = None) -> int:
    """Validate an integer in [lo, hi] and return it as a python int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name}: got {v}, allowed {allowed}")
    return v


def stitch_grid_tiles(patches, n_side: int, stride: int) -> np.ndarray:
    """Stitch a regular-grid scan by laying the central ``stride x stride`` tiles.

    Parameters
    ----------
    patches : array (n_side*n_side, N, N), any dtype (complex64 or float32 usually)
        Predicted patches in row-major scan order: patch ``i*n_side + j`` is the scan
        position with top-left corner ``(i*stride, j*stride)`` (row, col).
    n_side : int
        Number of scan positions per side.
    stride : int
        Scan step in pixels, ``1 <= stride <= N``.

    Returns
    -------
    ndarray (n_side*stride, n_side*stride), same dtype as ``patches``.
        Tile of patch ``(i, j)`` is its region ``[o:o+stride, o:o+stride]`` with
        ``o = (N - stride)//2``, placed at rows ``i*stride...`` and cols ``j*stride...``.
        The image corresponds to the object region :func:`grid_region` ``(N, stride,
        n_side)``; for the true object patches it equals ``clip_to_region(obj, region)``
        exactly.
    """
    arr = np.asarray(patches)
    if arr.ndim != 3:
        raise ValueError(f"patches: expected shape (n, N, N), got shape {arr.shape}")
    n, h, w = arr.shape
    if h != w:
        raise ValueError(f"patches: patches must be square (N, N), got {(h, w)}")
    n_side = _check_int(n_side, "n_side", 1)
    stride = _check_int(stride, "stride", 1)
    if n != n_side * n_side:
        raise ValueError(
            f"patches: got {n} patches, expected n_side**2 = {n_side * n_side} "
            f"for n_side={n_side}"
        )
    if stride > h:
        raise ValueError(f"stride: got {stride}, allowed in [1, N={h}]")
    o = (h - stride) // 2
    tiles = arr[:, o : o + stride, o : o + stride]
    tiles = tiles.reshape(n_side, n_side, stride, stride)
    # (grid row, grid col, tile row, tile col) -> (grid row, tile row, grid col, tile col)
    out = tiles.transpose(0, 2, 1, 3).reshape(n_side * stride, n_side * stride)
    return np.ascontiguousarray(out)


def grid_region(N: int, stride: int, n_side: int) -> tuple[int, int, int, int]:
    """Object region covered by :func:`stitch_grid_tiles`.

    Returns ``(row0, col0, height, width) = (o, o, n_side*stride, n_side*stride)`` with
    ``o = (N - stride)//2`` (the reference's ``(N - stride)/2`` offset). For N=64,
    stride=10, n_side=33: ``(27, 27, 330, 330)``.
    """
    N = _check_int(N, "N", 1)
    stride = _check_int(stride, "stride", 1, N)
    n_side = _check_int(n_side, "n_side", 1)
    o = (N - stride) // 2
    return (o, o, n_side * stride, n_side * stride)


def clip_to_region(image, region) -> np.ndarray:
    """Return ``image[row0:row0+height, col0:col0+width]`` (a view; trailing axes kept).

    ``image`` is (H, W, ...) (e.g. the ground truth (H, W) or (H, W, 1)); ``region`` is
    ``(row0, col0, height, width)`` as returned by :func:`grid_region`. Raises
    ValueError if the region does not fit inside the image.
    """
    img = np.asarray(image)
    if img.ndim < 2:
        raise ValueError(f"image: expected at least 2 dimensions, got shape {img.shape}")
    if len(region) != 4:
        raise ValueError(f"region: expected (row0, col0, height, width), got {region!r}")
    r0, c0, h, w = (int(v) for v in region)
    if r0 < 0 or c0 < 0 or h < 1 or w < 1 or r0 + h > img.shape[0] or c0 + w > img.shape[1]:
        raise ValueError(
            f"region: {(r0, c0, h, w)} does not fit in image of shape {img.shape[:2]} "
            "(need row0, col0 >= 0, height, width >= 1, row0+height <= H, col0+width <= W)"
        )
    return img[r0 : r0 + h, c0 : c0 + w]


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


def stitch_by_positions(patches, centres, canvas_shape, *, crop: int | None = None):
    """Shift-and-sum stitching: place each patch at its scan position, average overlaps.

    Parameters
    ----------
    patches : array (n, N, N) (or (..., N, N), e.g. (n, C, N, N)); complex or real.
    centres : array (n, 2) (or any shape whose size is 2*n and last axis is 2, e.g.
        (n, C, 1, 2)), float: absolute patch centres ``(x, y) = (column, row)`` in canvas
        pixels, matched to ``patches`` in flattened order. Rounded half-up to integers
        (``floor(v + 0.5)``); the patch top-left is then ``(y - N//2, x - N//2)``.
    canvas_shape : (H, W) of the output canvas.
    crop : int or None
        Use only the central ``crop x crop`` region of each patch, starting at patch
        pixel ``(N - crop)//2`` (``crop = stride`` reproduces :func:`stitch_grid_tiles`
        on a grid scan). Default ``None`` = the whole patch (``crop = N``).

    Returns
    -------
    canvas : ndarray (H, W)
        Mean of the overlapping contributions at each pixel, 0 where nothing lands.
        dtype ``np.result_type(patches.dtype, np.float32)`` (complex64 stays complex64,
        float32 stays float32; sums are accumulated in float64).
    coverage : ndarray (H, W) int64
        Number of (cropped) patches covering each pixel.

    Raises ValueError naming ``centres`` when any used patch pixel falls off the canvas.
    """
    stack = _as_patch_stack(patches)
    n, N, _ = stack.shape
    c = np.asarray(centres, dtype=np.float64)
    if c.ndim < 1 or c.shape[-1] != 2 or c.size != 2 * n:
        raise ValueError(
            f"centres: expected shape (n, 2) with n = {n} patches (x, y), got shape {c.shape}"
        )
    c = c.reshape(n, 2)
    if not np.all(np.isfinite(c)):
        raise ValueError("centres: contains NaN or inf; allowed finite (x, y) pixel values")
    if len(canvas_shape) != 2:
        raise ValueError(f"canvas_shape: expected (H, W), got {canvas_shape!r}")
    H = _check_int(canvas_shape[0], "canvas_shape[0]", 1)
    W = _check_int(canvas_shape[1], "canvas_shape[1]", 1)
    k = N if crop is None else _check_int(crop, "crop", 1, N)
    o = (N - k) // 2

    xy = np.floor(c + 0.5).astype(np.int64)
    # Top-left of the used (cropped) region on the canvas.
    r0 = xy[:, 1] - N // 2 + o
    c0 = xy[:, 0] - N // 2 + o
    bad = (r0 < 0) | (c0 < 0) | (r0 + k > H) | (c0 + k > W)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"centres: {int(bad.sum())} patch(es) fall off the canvas {(H, W)}, first "
            f"index {i} at (x, y) = {tuple(float(v) for v in c[i])}; allowed x in "
            f"[{N // 2 - o}, {W - k + N // 2 - o}], y in [{N // 2 - o}, {H - k + N // 2 - o}] "
            f"(patch N={N}, crop={k})"
        )

    out_dtype = np.result_type(stack.dtype, np.float32)
    is_complex = np.issubdtype(out_dtype, np.complexfloating)

    used = stack[:, o : o + k, o : o + k]
    # Linear canvas index of every used pixel = base[patch] + offset[pixel].
    base = r0 * W + c0
    ar = np.arange(k, dtype=np.int64)
    offset = (ar[:, None] * W + ar[None, :]).ravel()
    size = H * W
    acc_re = np.zeros(size, dtype=np.float64)
    acc_im = np.zeros(size, dtype=np.float64) if is_complex else None
    per_chunk = max(1, _CHUNK_ELEMENTS // (k * k))
    for s in range(0, n, per_chunk):  # blocks of ~1M pixels, not one patch at a time
        idx = (base[s : s + per_chunk, None] + offset[None, :]).ravel()
        vals = used[s : s + per_chunk].reshape(-1)
        if is_complex:
            acc_re += np.bincount(idx, weights=vals.real, minlength=size)
            acc_im += np.bincount(idx, weights=vals.imag, minlength=size)
        else:
            acc_re += np.bincount(idx, weights=vals, minlength=size)

    # Coverage: count windows by top-left corner, then a k x k box sum (exact integers).
    corner_counts = np.bincount(r0 * W + c0, minlength=size).reshape(H, W)
    coverage = _box_sum(corner_counts, k, (H, W))

    total = acc_re if not is_complex else acc_re + 1j * acc_im
    total = total.reshape(H, W)
    canvas = np.zeros((H, W), dtype=out_dtype)
    covered = coverage > 0
    canvas[covered] = (total[covered] / coverage[covered]).astype(out_dtype)
    return canvas, coverage


def stitch_patches(
    patches,
    *,
    n_side: int | None = None,
    stride: int | None = None,
    centres=None,
    canvas_shape=None,
    crop: int | None = None,
) -> np.ndarray:
    """Convenience dispatcher returning only the stitched image.

    Two modes, chosen by the arguments given (mixing them is a ValueError):

    * Grid mode: ``n_side`` and ``stride`` (no ``centres``/``canvas_shape``/``crop``)
      -> :func:`stitch_grid_tiles` ``(patches, n_side, stride)``, an
      ``(n_side*stride)``-square image of the region :func:`grid_region`.
    * Position mode: ``centres`` (and optionally ``canvas_shape``, ``crop``)
      -> the canvas of :func:`stitch_by_positions` (coverage dropped; call that function
      directly to get it). ``stride`` is ignored there and must be None; ``n_side``
      must be None. If ``canvas_shape`` is None, the smallest canvas with origin (0, 0)
      that holds every used patch pixel is taken: ``(max(y_round - N//2 + o) + crop,
      max(x_round - N//2 + o) + crop)`` with ``o = (N - crop)//2``.
    """
    if centres is not None:
        if n_side is not None or stride is not None:
            raise ValueError(
                "stitch_patches: give either (n_side, stride) for grid tiles or centres "
                f"for position stitching, not both (n_side={n_side!r}, stride={stride!r})"
            )
        if canvas_shape is None:
            stack = _as_patch_stack(patches)
            N = stack.shape[-1]
            k = N if crop is None else _check_int(crop, "crop", 1, N)
            o = (N - k) // 2
            c = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
            if c.shape[0] == 0 or not np.all(np.isfinite(c)):
                raise ValueError(
                    "centres: need at least one finite (x, y) centre to infer canvas_shape"
                )
            xy = np.floor(c + 0.5).astype(np.int64)
            canvas_shape = (
                int(max(xy[:, 1].max() - N // 2 + o + k, 1)),
                int(max(xy[:, 0].max() - N // 2 + o + k, 1)),
            )
        canvas, _ = stitch_by_positions(patches, centres, canvas_shape, crop=crop)
        return canvas
    if n_side is None or stride is None:
        raise ValueError(
            "stitch_patches: grid mode needs both n_side and stride, position mode needs "
            f"centres (got n_side={n_side!r}, stride={stride!r}, centres=None)"
        )
    if canvas_shape is not None or crop is not None:
        raise ValueError(
            "stitch_patches: canvas_shape and crop apply only with centres "
            f"(got canvas_shape={canvas_shape!r}, crop={crop!r})"
        )
    return stitch_grid_tiles(patches, n_side, stride)
