"""A stitched canvas that grows chunk by chunk while a scan is measured.

:class:`IncrementalCanvas` keeps the running sums of :func:`ptycho.stitching.positions.
stitch_by_positions` -- ``sum w * patch`` (complex128), ``sum w`` and the coverage count --
on a canvas that grows (by at least a quarter of its size, so a growing scan reallocates
rarely) whenever a chunk's patches reach past it. Each chunk is placed exactly as the batch
stitching places it (half-up rounded centres, the same sub-pixel resampling and crop, the
same weights), so :meth:`IncrementalCanvas.image` equals the batch stitching of every patch
added so far, to float precision, whatever the chunks. Memory is that of the canvas (28
bytes a pixel) and one chunk, never that of the frames. ``align_phase`` needs every patch at
once and has no incremental form.
"""
from __future__ import annotations

import numpy as np

from ptycho.geometry.rounding import round_half_up
from ptycho.stitching.positions import SUBPIXEL_MODES, _accumulate, _as_weights
from ptycho.stitching.regions import _window_coverage, scan_region
from ptycho.stitching.subpixel import _shift_and_crop

__all__ = ["IncrementalCanvas"]


class IncrementalCanvas:
    """Running weighted sums of N x N patches at (x, y) centres in object pixels (any
    sign). ``crop``: the central region used (None: N); ``subpixel``: one of
    :data:`ptycho.stitching.SUBPIXEL_MODES`; ``weights``: None (overlaps averaged) or an
    (N, N) map shared by every patch (e.g. :func:`ptycho.stitching.probe_weights`)."""

    def __init__(self, N: int, crop: int | None = None, subpixel: str = "none", weights=None):
        if subpixel not in SUBPIXEL_MODES:
            raise ValueError(f"subpixel={subpixel!r} is not allowed (choose one of: "
                             f"{', '.join(SUBPIXEL_MODES)})")
        self.N, self.k = int(N), int(N if crop is None else crop)
        self.o = (self.N - self.k) // 2
        self.subpixel = subpixel
        self.weights = None if weights is None else _as_weights(weights, 1, self.N, self.o, self.k)
        self.origin = (0, 0)            # (ox, oy): canvas pixel (r, c) = object (r - oy, c - ox)
        self.num = np.zeros((0, 0), np.complex128)
        self.den = np.zeros((0, 0), np.float64)
        self.cov = np.zeros((0, 0), np.int32)
        # (row0, col0, row1, col1): the object pixels reached
        self.box: tuple[int, int, int, int] | None = None
        self.centres = np.zeros((0, 2), np.float64)
        self.n = 0

    @property
    def nbytes(self) -> int:
        return self.num.nbytes + self.den.nbytes + self.cov.nbytes + self.centres.nbytes

    def add(self, patches, centres) -> None:
        """Add patches (n, N, N) (or (n, 1, N, N)) at centres (n, 2) (x, y)."""
        stack = np.asarray(patches).reshape(-1, self.N, self.N)
        c = np.asarray(centres, np.float64).reshape(-1, 2)
        if stack.shape[0] != c.shape[0]:
            raise ValueError(f"patches: {stack.shape[0]} patches for {c.shape[0]} centres")
        if not np.all(np.isfinite(c)):
            raise ValueError("centres: contains NaN or inf; allowed finite (x, y) pixel values")
        if c.shape[0] == 0:
            return
        xy = round_half_up(c)
        r0 = xy[:, 1] - self.N // 2 + self.o        # object pixels
        c0 = xy[:, 0] - self.N // 2 + self.o
        self._reach(int(r0.min()), int(c0.min()), int(r0.max()) + self.k, int(c0.max()) + self.k)
        R0, C0 = r0 + self.origin[1], c0 + self.origin[0]
        out_dtype = np.result_type(stack.dtype, np.float32)
        if self.subpixel == "none":
            used = stack[:, self.o:self.o + self.k, self.o:self.o + self.k]
        else:
            used = _shift_and_crop(stack, c - xy, self.o, self.k, self.subpixel, out_dtype)
        br, bc = int(R0.min()), int(C0.min())
        shape = (int(R0.max()) + self.k - br, int(C0.max()) + self.k - bc)
        total, acc_w = _accumulate(used, self.weights, R0 - br, C0 - bc, self.k, shape, True)
        cov = _window_coverage(R0 - br, C0 - bc, self.k, shape)
        win = (slice(br, br + shape[0]), slice(bc, bc + shape[1]))
        self.num[win] += total.reshape(shape)
        self.den[win] += cov if acc_w is None else acc_w.reshape(shape)
        self.cov[win] += cov.astype(np.int32)
        self.centres = np.concatenate([self.centres, c])
        self.n += c.shape[0]

    def _reach(self, r0: int, c0: int, r1: int, c1: int) -> None:
        """Grow the canvas so that object rows r0..r1-1 and columns c0..c1-1 fit."""
        b = self.box
        self.box = (r0, c0, r1, c1) if b is None else (min(b[0], r0), min(b[1], c0),
                                                       max(b[2], r1), max(b[3], c1))
        ox, oy = self.origin
        H, W = self.num.shape
        if self.num.size and r0 + oy >= 0 and c0 + ox >= 0 and r1 + oy <= H and c1 + ox <= W:
            return
        pad_r, pad_c = max(self.k, H // 4), max(self.k, W // 4)
        lo_r = -oy if self.num.size else r0
        lo_c = -ox if self.num.size else c0
        hi_r = H - oy if self.num.size else r1
        hi_c = W - ox if self.num.size else c1
        new_lo_r = lo_r if r0 >= lo_r else r0 - pad_r
        new_lo_c = lo_c if c0 >= lo_c else c0 - pad_c
        new_hi_r = hi_r if r1 <= hi_r else r1 + pad_r
        new_hi_c = hi_c if c1 <= hi_c else c1 + pad_c
        shape = (new_hi_r - new_lo_r, new_hi_c - new_lo_c)
        at = (lo_r - new_lo_r, lo_c - new_lo_c)
        self.num, self.den, self.cov = (self._moved(a, shape, at)
                                        for a in (self.num, self.den, self.cov))
        self.origin = (-new_lo_c, -new_lo_r)

    @staticmethod
    def _moved(a: np.ndarray, shape, at) -> np.ndarray:
        out = np.zeros(shape, a.dtype)
        out[at[0]:at[0] + a.shape[0], at[1]:at[1] + a.shape[1]] = a
        return out

    def image(self) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """``(canvas complex64, covered bool, (row, col) of its pixel (0, 0) in the object
        frame)``: the stitched object of every patch added, on the smallest canvas that holds
        them (the canvas :func:`ptycho.stitching.canvas_for_positions` gives)."""
        if self.box is None:
            raise ValueError("no patch has been added to the canvas yet")
        r0, c0, r1, c1 = self.box
        ox, oy = self.origin
        win = (slice(r0 + oy, r1 + oy), slice(c0 + ox, c1 + ox))
        num, den = self.num[win], self.den[win]
        canvas = np.zeros(num.shape, np.complex64)
        ok = den > 0
        canvas[ok] = (num[ok] / den[ok]).astype(np.complex64)
        return canvas, self.cov[win] > 0, (r0, c0)

    def scored(self) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """``(recon, region)``: the stitched object clipped to
        :func:`ptycho.stitching.scan_region` of every centre added (the region a finished
        scan is scored and written on; (row0, col0, height, width) object pixels)."""
        canvas, _, (row0, col0) = self.image()
        region = scan_region(self.centres, self.N, crop=self.k)
        r, c = region[0] - row0, region[1] - col0
        r0, c0, h, w = (int(v) for v in region)
        return canvas[r:r + region[2], c:c + region[3]], (r0, c0, h, w)
