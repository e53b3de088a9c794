"""The reference recipe: central stride x stride tiles on a regular grid scan."""
from __future__ import annotations

import numpy as np

from ptycho.stitching._common import _check_int


def stitch_grid_tiles(patches, n_side: int, stride: int) -> np.ndarray:
    """Stitch a regular-grid scan by laying the central ``stride x stride`` tiles.

    Args:
        patches: array (n_side*n_side, N, N), any dtype (complex64 or float32 usually).
            Predicted patches in row-major scan order: patch ``i*n_side + j`` is the
            scan position with top-left corner ``(i*stride, j*stride)`` (row, col).
        n_side: int. Number of scan positions per side.
        stride: int. Scan step in pixels, ``1 <= stride <= N``.

    Returns:
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
