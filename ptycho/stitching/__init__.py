"""Reassembly of predicted object patches into one object image (numpy only).

Two ways to stitch, both vectorized (no Python loop over patches, except the optional
phase-alignment pass):

* :func:`stitch_grid_tiles` -- the reference study's method for a regular grid scan at
  gridsize 1: every patch contributes only its central ``stride x stride`` tile and the
  tiles are laid row-major on the scan grid. The result is ``n_side*stride`` square and
  covers the object region given by :func:`grid_region` (clip the ground truth with
  :func:`clip_to_region` before comparing).
* :func:`stitch_by_positions` -- the general method (irregular scans, gridsize > 1):
  shift each patch (or its central ``crop x crop`` region) to its scan position on a
  canvas, sum, and divide by the coverage count (average of overlaps). Optionally with
  sub-pixel placement (``subpixel="fourier"`` or ``"bilinear"``), per-patch constant
  phase alignment (``align_phase=True``) and weights; :func:`canvas_for_positions`
  sizes a canvas for scans whose positions may be negative.

:class:`StitchOptions` (validated record of the ``--stitch`` choices) and :func:`stitch`
dispatch between the two.

Conventions (project-wide): images are indexed ``[row, col]``; positions are
``(x, y) = (column, row)`` in object pixels, in that order (the reference stored offsets
as ``(y, x)``; we do not). A patch of size ``N`` with top-left corner ``(r0, c0)`` has
centre ``(x, y) = (c0 + N//2, r0 + N//2)``. The central ``crop x crop`` region of a patch
starts at patch pixel ``(N - crop)//2`` on both axes, the same offset that
:func:`stitch_grid_tiles` and :func:`grid_region` use, so both methods agree exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ptycho.config.choices import STITCH_MODES  # the one definition of the modes
from ptycho.config.validation import check_bool, check_choice, check_int
from ptycho.stitching._common import _check_int
from ptycho.stitching.positions import SUBPIXEL_MODES, stitch_by_positions
from ptycho.stitching.regions import canvas_for_positions, covered_box, scan_region
from ptycho.stitching.tiles import clip_to_region, grid_region, stitch_grid_tiles

__all__ = [
    "stitch_grid_tiles",
    "grid_region",
    "clip_to_region",
    "stitch_by_positions",
    "canvas_for_positions",
    "covered_box",
    "scan_region",
    "StitchOptions",
    "STITCH_MODES",
    "STITCH_WEIGHTINGS",
    "SUBPIXEL_MODES",
    "probe_weights",
    "stitch",
]

# How position stitching averages overlaps: plain mean, or weighted by the probe intensity
# (the weights of :func:`probe_weights`).
STITCH_WEIGHTINGS = ("uniform", "probe")


def probe_weights(probe) -> np.ndarray:
    """The per-pixel stitching weights of a probe: ``|P|**2`` summed over its incoherent
    modes, float64 (N, N), for ``weights=`` of :func:`stitch_by_positions` (which crops
    them like the patches). ``probe``: (N, N) or (modes, N, N) complex."""
    p = np.asarray(probe)
    if p.ndim not in (2, 3) or p.shape[-1] != p.shape[-2]:
        raise ValueError(f"probe: expected shape (N, N) or (modes, N, N), got {p.shape}")
    w = (np.abs(p.astype(np.complex128)) ** 2).reshape(-1, *p.shape[-2:]).sum(axis=0)
    if not np.all(np.isfinite(w)) or not w.any():
        raise ValueError("probe: its intensity must be finite and not all zero to weigh "
                         "the stitching")
    return w


# ----------------------------------------------------------------------------------
# Options record and dispatcher
# ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class StitchOptions:
    """How to reassemble patches (validated on construction; errors are one line).

    mode : "positions" (:func:`stitch_by_positions`, any scan) or "tiles" (the reference
        recipe :func:`stitch_grid_tiles`, regular grid scans at gridsize 1 only).
    crop : central region used per patch, 1..N, or None (positions: whole patch; tiles:
        always ``stride``, so it must be None or equal the stride).
    subpixel : one of :data:`SUBPIXEL_MODES` (positions mode only).
    align_phase : per-patch constant-phase alignment (positions mode only).
    """

    mode: str = "positions"
    crop: int | None = None
    subpixel: str = "none"
    align_phase: bool = False

    def __post_init__(self):
        owner = "StitchOptions"
        check_choice(owner, "mode", self.mode, STITCH_MODES)
        if self.crop is not None:
            check_int(owner, "crop", self.crop)
            if self.crop < 1:
                raise ValueError(f"{owner}.crop={self.crop!r} is out of range (allowed: 1..N)")
        check_choice(owner, "subpixel", self.subpixel, SUBPIXEL_MODES)
        check_bool(owner, "align_phase", self.align_phase)
        if self.mode == "tiles" and self.subpixel != "none":
            raise ValueError(
                f"{owner}.subpixel={self.subpixel!r} is not allowed with mode='tiles' "
                "(tiles sit on the integer scan grid; use mode='positions')"
            )
        if self.mode == "tiles" and self.align_phase:
            raise ValueError(
                f"{owner}.align_phase=True is not allowed with mode='tiles' "
                "(tiles do not overlap; use mode='positions')"
            )


def _tiles_refusal(reason: str) -> ValueError:
    return ValueError(
        f"stitch mode 'tiles' needs a regular grid scan at gridsize 1 with "
        f"grid=(n_side, stride) ({reason}); use --stitch positions"
    )


def stitch(patches, centres, options: StitchOptions, *, canvas_shape=None, grid=None,
           weights=None):
    """Stitch patches as ``options`` says; returns ``(image, coverage)``.

    Args:
        patches: (n, C, N, N) or (n, N, N).
        centres: (n, C, 2), (n, C, 1, 2) or (n, 2) absolute (x, y) patch centres (e.g.
            ``PtychoDataset.centres``); may be None in tiles mode.
        options: :class:`StitchOptions`.
        canvas_shape: positions mode: (H, W) of the canvas, in the centres' coordinates.
            Default: per axis, if every used patch pixel has a non-negative coordinate
            the canvas starts at object pixel 0 (image pixel = object pixel) and ends at the
            last used pixel; otherwise it starts at the first used pixel, i.e. the centres
            are shifted by the origin of
            :func:`canvas_for_positions` (call that function to learn the shift).
        grid: tiles mode: ``(n_side, stride)`` of the regular, row-major scan.
        weights: positions mode: the ``weights`` of :func:`stitch_by_positions` (e.g.
            :func:`probe_weights`); None: overlaps averaged. Refused in tiles mode.

    Returns:
        ``(image, coverage)``:

        * ``image``: positions: the canvas of :func:`stitch_by_positions`; tiles: the
          ``(n_side*stride)``-square image of :func:`stitch_grid_tiles` (object region
          :func:`grid_region`).
        * ``coverage``: int64 per-pixel patch count (all ones in tiles mode).
    """
    if not isinstance(options, StitchOptions):
        raise ValueError(f"options: expected a StitchOptions, got {type(options).__name__}")
    arr = np.asarray(patches)
    if arr.ndim not in (3, 4):
        raise ValueError(f"patches: expected shape (n, C, N, N) or (n, N, N), got {arr.shape}")
    N = arr.shape[-1]
    if options.crop is not None and options.crop > N:
        raise ValueError(f"StitchOptions.crop={options.crop!r} is out of range (allowed: 1..{N})")

    if options.mode == "tiles":
        if weights is not None:
            raise ValueError("weights: not allowed with stitch mode 'tiles' (tiles do not "
                             "overlap; use mode='positions')")
        return _stitch_tiles(arr, centres, options, grid)
    return _stitch_positions(arr, centres, options, canvas_shape, weights)


def _stitch_tiles(arr: np.ndarray, centres, options: StitchOptions, grid):
    """Tiles mode of :func:`stitch`: check the grid (and the centres when given), then
    :func:`stitch_grid_tiles`; coverage is all ones."""
    N = arr.shape[-1]
    if grid is None:
        raise _tiles_refusal("no grid given")
    if arr.ndim == 4 and arr.shape[1] != 1:
        raise _tiles_refusal(f"got gridsize > 1 patches of shape {arr.shape}")
    if len(grid) != 2:
        raise _tiles_refusal(f"grid={grid!r}")
    n_side = _check_int(grid[0], "grid[0] (n_side)", 1)
    stride = _check_int(grid[1], "grid[1] (stride)", 1)
    stack = arr.reshape(-1, N, N)
    if stack.shape[0] != n_side * n_side:
        raise _tiles_refusal(
            f"{stack.shape[0]} patches for n_side={n_side} (expected {n_side * n_side})"
        )
    if options.crop is not None and options.crop != stride:
        raise ValueError(
            f"StitchOptions.crop={options.crop!r} does not match the grid stride "
            f"{stride} (tiles always use crop = stride; leave crop unset)"
        )
    if centres is not None:
        _check_grid_centres(centres, stack.shape[0], n_side, stride)
    image = stitch_grid_tiles(stack, n_side, stride)
    return image, np.ones(image.shape, dtype=np.int64)


def _check_grid_centres(centres, n: int, n_side: int, stride: int) -> None:
    """Refuse ``centres`` that are not the row-major ``n_side x n_side`` grid of step
    ``stride`` (to 1e-3 pixel)."""
    c = np.asarray(centres, dtype=np.float64)
    if c.size != 2 * n or c.shape[-1] != 2:
        raise ValueError(f"centres: expected shape (n, 2) with n = {n}, got {c.shape}")
    c = c.reshape(-1, 2)
    i, j = np.meshgrid(np.arange(n_side), np.arange(n_side), indexing="ij")
    expected = c[0] + stride * np.stack([j.ravel(), i.ravel()], axis=1)
    if not np.allclose(c, expected, rtol=0.0, atol=1e-3):
        raise _tiles_refusal(
            f"the centres are not a row-major {n_side}x{n_side} grid with step {stride}"
        )


def _stitch_positions(arr: np.ndarray, centres, options: StitchOptions, canvas_shape,
                      weights=None):
    """Positions mode of :func:`stitch` (default canvas as :func:`stitch` describes)."""
    N = arr.shape[-1]
    if centres is None:
        raise ValueError("centres: required for stitch mode 'positions'")
    c = np.asarray(centres, dtype=np.float64)
    if canvas_shape is None:
        (h, w), (ox, oy) = canvas_for_positions(c, N, options.crop)
        # Per axis: keep object coordinates (origin 0) when every used pixel is at a
        # non-negative coordinate, else shift by the tight canvas's origin.
        sx, sy = max(ox, 0), max(oy, 0)
        canvas_shape = (h - oy + sy, w - ox + sx)
        c = c + np.asarray([sx, sy], dtype=np.float64)
    return stitch_by_positions(
        arr,
        c,
        canvas_shape,
        crop=options.crop,
        subpixel=options.subpixel,
        align_phase=options.align_phase,
        weights=weights,
    )
