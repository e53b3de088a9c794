"""Shift-and-sum stitching at the scan positions, overlaps averaged (any scan, any gridsize)."""
from __future__ import annotations

import numpy as np

from ptycho.config.validation import check_bool, check_choice
from ptycho.geometry.rounding import round_half_up
from ptycho.stitching._common import _CHUNK_ELEMENTS, _as_patch_stack, _check_int
from ptycho.stitching.phase_align import _align_phases
from ptycho.stitching.regions import _window_coverage
from ptycho.stitching.subpixel import _shift_and_crop

SUBPIXEL_MODES = ("none", "fourier", "bilinear")


def _as_weights(weights, n: int, N: int, o: int, k: int):
    """Normalise ``weights`` to ``None``, per-patch scalars (n,), or per-pixel maps of the
    used region (n or 1, k, k), all float64, finite and >= 0."""
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim >= 2 and w.shape[-2:] == (N, N):
        w = w.reshape(-1, N, N)
        if w.shape[0] not in (1, n):
            raise ValueError(
                f"weights: per-pixel maps must be (N, N) or (n, N, N) with n = {n}, "
                f"got shape {np.shape(weights)}"
            )
        w = w[:, o : o + k, o : o + k]
    elif w.size == n:
        w = w.reshape(n)
    else:
        raise ValueError(
            f"weights: expected (n,) per-patch weights, an (N, N) map or (n, N, N) maps "
            f"with n = {n}, N = {N}; got shape {np.shape(weights)}"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights: must be finite and >= 0")
    return w


def _weights_block(w, s: int, e: int, kk: int) -> np.ndarray:
    """Per-pixel weights (e - s, kk) of patches s..e-1 (``w`` from :func:`_as_weights`)."""
    if w.ndim == 1:
        return np.broadcast_to(w[s:e, None], (e - s, kk))
    if w.shape[0] == 1:
        return np.broadcast_to(w.reshape(1, kk), (e - s, kk))
    return w[s:e].reshape(e - s, kk)


def stitch_by_positions(
    patches,
    centres,
    canvas_shape,
    *,
    crop: int | None = None,
    subpixel: str = "none",
    align_phase: bool = False,
    weights=None,
):
    """Shift-and-sum stitching: place each patch at its scan position, average overlaps.

    Args:
        patches: array (n, N, N) (or (..., N, N), e.g. (n, C, N, N)); complex or real.
        centres: array (n, 2) (or any shape whose size is 2*n and last axis is 2, e.g.
            (n, C, 1, 2)), float: absolute patch centres ``(x, y) = (column, row)`` in
            canvas pixels, matched to ``patches`` in flattened order. Rounded half-up to
            integers (``floor(v + 0.5)``); the patch top-left is then
            ``(y - N//2, x - N//2)``.
        canvas_shape: (H, W) of the output canvas (see :func:`canvas_for_positions` for
            scans whose positions may be negative).
        crop: int or None. Use only the central ``crop x crop`` region of each patch,
            starting at patch pixel ``(N - crop)//2`` (``crop = stride`` reproduces
            :func:`stitch_grid_tiles` on a grid scan). Default ``None`` = the whole
            patch (``crop = N``).
        subpixel: ``"none"`` | ``"fourier"`` | ``"bilinear"``. What to do with the
            fractional part ``f = centre - round(centre)`` (in ``[-0.5, 0.5)`` per
            axis). ``"none"`` (default): ignore it (integer placement). Otherwise each
            patch is first resampled so that its content moves by ``f``
            (``q[j] = patch[j - f]``), then placed at the rounded position:
            ``"fourier"`` applies a Fourier phase ramp, separably per axis, to the
            patch's mirror (even) extension of period 2N -- DCT interpolation: exact for
            smooth content away from the patch border, and without the wrap-around
            ringing a plain N-periodic FFT shift of a windowed patch produces (use
            ``crop`` to drop the few border pixels); ``"bilinear"`` interpolates
            linearly between the 2 x 2 neighbours (border pixel repeated). Patches whose
            centre is integer are not resampled, so both modes equal ``"none"`` exactly
            for integer centres. Batched over patches, in blocks to bound memory.
        align_phase: bool. Complex patches only. Remove an unknown constant phase per
            patch before averaging (the phase ambiguity of a reconstruction): patch
            ``k`` is multiplied by ``exp(-1j*theta_k)``. Patches are visited by distance
            from the patch nearest the scan's centroid; pass 1 sets
            ``theta_k = angle(sum over its (cropped) region of conj(S) * w * patch_k)``
            with ``S`` the weighted sum of the patches already placed (``theta_k = 0``
            if nothing overlaps yet); pass 2 repeats that against the sum of all the
            other patches (leave-one-out, updated in place). The free global phase is
            then fixed so that the circular mean of ``theta`` is zero. Needs overlapping
            (cropped) patches; a loop over patches, O(n * crop**2).
        weights: None, array (n,), (N, N) or (n, N, N), optional. Non-negative weights
            for a weighted average ``sum(w * p) / sum(w)``: one scalar per patch, one
            map in patch pixels shared by all patches (e.g. the probe intensity) or one
            map per patch. Maps are cropped like the patches and are not sub-pixel
            shifted. Default: plain mean.

    Returns:
        ``(canvas, coverage)``:

        * ``canvas``: ndarray (H, W). Mean (weighted mean if ``weights``) of the
          overlapping contributions at each pixel, 0 where nothing lands (or the
          weights sum to 0). dtype ``np.result_type(patches.dtype, np.float32)``
          (complex64 stays complex64, float32 stays float32; sums are accumulated in
          float64).
        * ``coverage``: ndarray (H, W) int64. Number of (cropped) patches covering each
          pixel.

    Raises:
        ValueError: naming ``centres`` when any used patch pixel falls off the canvas,
            and naming the argument for an invalid ``crop``, ``subpixel``,
            ``align_phase`` (or ``align_phase=True`` on real patches) or ``weights``.
    """
    stack = _as_patch_stack(patches)
    n, N, _ = stack.shape
    c = _check_centres(centres, n)
    H, W = _check_canvas_shape(canvas_shape)
    k = N if crop is None else _check_int(crop, "crop", 1, N)
    o = (N - k) // 2
    check_choice("", "subpixel", subpixel, SUBPIXEL_MODES)
    check_bool("", "align_phase", align_phase)

    out_dtype = np.result_type(stack.dtype, np.float32)
    is_complex = np.issubdtype(out_dtype, np.complexfloating)
    if align_phase and not is_complex:
        raise ValueError(
            f"align_phase=True needs complex patches (got dtype {stack.dtype}); a constant "
            "phase offset is undefined for real images"
        )

    xy, r0, c0 = _placements(c, N, k, o, (H, W))
    w = _as_weights(weights, n, N, o, k)

    if subpixel == "none":
        used = stack[:, o : o + k, o : o + k]
    else:
        used = _shift_and_crop(stack, c - xy, o, k, subpixel, out_dtype)
    if align_phase:
        theta = _align_phases(used, r0, c0, k, (H, W), w)
        used = used * np.exp(-1j * theta).astype(out_dtype)[:, None, None]

    total, acc_w = _accumulate(used, w, r0, c0, k, (H, W), is_complex)
    coverage = _window_coverage(r0, c0, k, (H, W))
    return _average(total, acc_w, coverage, out_dtype), coverage


def _check_centres(centres, n: int) -> np.ndarray:
    """``centres`` as a finite float64 (n, 2) array of (x, y), or a one-line refusal."""
    c = np.asarray(centres, dtype=np.float64)
    if c.ndim < 1 or c.shape[-1] != 2 or c.size != 2 * n:
        raise ValueError(
            f"centres: expected shape (n, 2) with n = {n} patches (x, y), got shape {c.shape}"
        )
    c = c.reshape(n, 2)
    if not np.all(np.isfinite(c)):
        raise ValueError("centres: contains NaN or inf; allowed finite (x, y) pixel values")
    return c


def _check_canvas_shape(canvas_shape) -> tuple[int, int]:
    """``(H, W)`` of ``canvas_shape``, both ints >= 1, or a one-line refusal."""
    if len(canvas_shape) != 2:
        raise ValueError(f"canvas_shape: expected (H, W), got {canvas_shape!r}")
    H = _check_int(canvas_shape[0], "canvas_shape[0]", 1)
    W = _check_int(canvas_shape[1], "canvas_shape[1]", 1)
    return H, W


def _placements(c: np.ndarray, N: int, k: int, o: int, shape: tuple[int, int]):
    """``(xy, r0, c0)``: the centres rounded half-up and the canvas top-left of each used
    (cropped) region; refuses patches whose used region falls off the canvas."""
    H, W = shape
    xy = round_half_up(c)
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
    return xy, r0, c0


def _accumulate(used, w, r0, c0, k: int, shape: tuple[int, int], is_complex: bool):
    """``(total, acc_w)``: the (weighted) sum of the used regions on the flat canvas
    (complex when ``is_complex``) and the sum of the weights (None without weights);
    float64, accumulated in blocks of ~1M pixels."""
    H, W = shape
    n = used.shape[0]
    # Linear canvas index of every used pixel = base[patch] + offset[pixel].
    base = r0 * W + c0
    ar = np.arange(k, dtype=np.int64)
    offset = (ar[:, None] * W + ar[None, :]).ravel()
    size = H * W
    acc_re = np.zeros(size, dtype=np.float64)
    acc_im = np.zeros(size if is_complex else 0, dtype=np.float64)   # empty when unused
    acc_w = np.zeros(size if w is not None else 0, dtype=np.float64)
    per_chunk = max(1, _CHUNK_ELEMENTS // (k * k))
    for s in range(0, n, per_chunk):  # blocks of ~1M pixels, not one patch at a time
        e = min(s + per_chunk, n)
        idx = (base[s:e, None] + offset[None, :]).ravel()
        vals = used[s:e].reshape(-1)
        if w is not None:
            wb = _weights_block(w, s, e, k * k).reshape(-1)
            vals = vals * wb
            acc_w += np.bincount(idx, weights=wb, minlength=size)
        if is_complex:
            acc_re += np.bincount(idx, weights=vals.real, minlength=size)
            acc_im += np.bincount(idx, weights=vals.imag, minlength=size)
        else:
            acc_re += np.bincount(idx, weights=vals, minlength=size)
    total = acc_re if not is_complex else acc_re + 1j * acc_im
    return total, (acc_w if w is not None else None)


def _average(total, acc_w, coverage: np.ndarray, out_dtype) -> np.ndarray:
    """The canvas: ``total`` over the coverage count (or over the weight sum ``acc_w``),
    0 where nothing lands (or the weights sum to 0), in ``out_dtype``."""
    H, W = coverage.shape
    total = total.reshape(H, W)
    canvas = np.zeros((H, W), dtype=out_dtype)
    if acc_w is None:
        covered = coverage > 0
        canvas[covered] = (total[covered] / coverage[covered]).astype(out_dtype)
    else:
        wsum = acc_w.reshape(H, W)
        covered = wsum > 0
        canvas[covered] = (total[covered] / wsum[covered]).astype(out_dtype)
    return canvas
