"""The reconstructed object in the frame of Ptychodus' input object.

Ptychodus places the array this back end returns with the input object's pixel geometry
and centre (``ptychodus/model/ptychopinn_torch/_subprocess.py``), and gives the back end
the probe positions in that object's pixels but not the object's shape. Ptychodus maps a
position ``v`` (metres) to pixel ``(v - centre) / pixel + (size - 1) / 2``, and the objects
it builds are centred on the scan, so ``x_min + x_max = size - 1`` per axis:
:func:`frame_shape` recovers ``(H, W)`` as ``round(x_min + x_max) + 1``, which is exact for
any object centred on the scan to within half a pixel (the returned pixels are then the
input object's pixels). A sum more than 0.4 px from an integer is logged: such an object
may be off-centre, and one off by more than half a pixel gets a reconstruction offset by
whole pixels.

:func:`stitch_in_frame` stitches the predicted patches at those positions on an ``(H, W)``
canvas (each patch's central ``crop`` region, sub-pixel placement, uniform or probe
weights); pixels no patch reaches get the covered region's mean amplitude with phase 0.
"""
from __future__ import annotations

import logging
import math

import numpy as np

from ptycho.stitching.positions import stitch_by_positions

__all__ = ["frame_from_canvas", "frame_shape", "stitch_in_frame"]

log = logging.getLogger(__name__)


def frame_shape(positions_xy: np.ndarray, N: int) -> tuple[int, int]:
    """``(H, W)`` of a scan-centred input object from the (x, y) positions in its pixels."""
    pos = np.asarray(positions_xy, dtype=np.float64)
    sums = pos.min(axis=0) + pos.max(axis=0)          # (x_min + x_max, y_min + y_max)
    size = [int(round(v)) + 1 for v in sums]
    off = [abs(v - round(v)) for v in sums]
    if max(off) > 0.4:
        log.warning("the input object may not be centred on the scan (x_min + x_max = %.3f, "
                    "y_min + y_max = %.3f px): the reconstruction is placed on a %d x %d "
                    "frame and is offset by whole pixels if the object is off-centre by more "
                    "than half a pixel", sums[0], sums[1], size[1], size[0])
    W, H = max(size[0], 1), max(size[1], 1)
    if min(H, W) < 1 or max(H, W) > 1 << 16:
        raise ValueError(f"positions: an object frame of {H} x {W} pixels (allowed: 1..65536)")
    return H, W


def stitch_in_frame(patches: np.ndarray, centres_xy: np.ndarray, shape: tuple[int, int], *,
                    crop: int, subpixel: str = "fourier", weights=None) -> np.ndarray:
    """(H, W) complex64: ``patches`` (n, C, N, N) at ``centres_xy`` (n, C, 2) in the frame's
    pixels (see the module docstring); ``weights`` as :func:`stitch_by_positions`."""
    N = int(patches.shape[-1])
    H, W = shape
    pad = N  # every used pixel of a patch whose centre lies in the frame lands on the canvas
    canvas, coverage = stitch_by_positions(
        patches, np.asarray(centres_xy, np.float64) + pad, (H + 2 * pad, W + 2 * pad),
        crop=crop, subpixel=subpixel, weights=weights)
    out = np.asarray(canvas)[pad:pad + H, pad:pad + W].astype(np.complex64)
    covered = np.asarray(coverage)[pad:pad + H, pad:pad + W] > 0
    return _fill(out, covered)


def frame_from_canvas(canvas: np.ndarray, shift_xy, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) complex64 frame of an object ``canvas`` whose pixel (r, c) is frame pixel
    ``(r - dy, c - dx)`` (``shift_xy = (dx, dy)``, the dataset's ``position_origin_px``)."""
    H, W = shape
    dx, dy = (int(round(v)) for v in shift_xy)
    out = np.zeros((H, W), np.complex64)
    covered = np.zeros((H, W), bool)
    r0, c0 = max(0, -dy), max(0, -dx)
    r1, c1 = min(H, canvas.shape[0] - dy), min(W, canvas.shape[1] - dx)
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = canvas[r0 + dy:r1 + dy, c0 + dx:c1 + dx]
        covered[r0:r1, c0:c1] = True
    return _fill(out, covered)


def _fill(out: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Uncovered pixels: the covered mean amplitude, phase 0."""
    if not covered.all():
        fill = float(np.abs(out[covered]).mean()) if covered.any() else 1.0
        out[~covered] = fill if math.isfinite(fill) else 1.0
    return out
