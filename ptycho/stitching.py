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

from ptycho.config.validation import check_bool, check_choice, check_int

__all__ = [
    "stitch_grid_tiles",
    "grid_region",
    "clip_to_region",
    "stitch_by_positions",
    "canvas_for_positions",
    "covered_box",
    "scan_region",
    "stitch_patches",
    "StitchOptions",
    "STITCH_MODES",
    "SUBPIXEL_MODES",
    "stitch",
]

# Elements (patch pixels) summed per np.bincount call in stitch_by_positions. Chunking
# keeps the temporary index array cache-sized and the memory bounded; it is a loop over
# blocks of ~2**20 pixels, not over patches.
_CHUNK_ELEMENTS = 1 << 20

#: Stitching methods of :class:`StitchOptions` (``--stitch``).
STITCH_MODES = ("positions", "tiles")
#: Sub-pixel placement modes of :func:`stitch_by_positions`.
SUBPIXEL_MODES = ("none", "fourier", "bilinear")


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


def _fourier_shift_last(x: np.ndarray, f: np.ndarray, cdtype) -> np.ndarray:
    """Shift the content of ``x`` (m, A, L) along its last axis by ``f`` (m,) pixels
    (``out[..., j] = x[..., j - f]``) with a Fourier phase ramp applied to the even
    (mirror) extension of period 2L, i.e. DCT-II interpolation.

    The mirror extension is continuous across the period boundary, so there is no
    wrap-around jump: the error of a band-limited signal is confined to a few pixels at
    the patch border instead of ringing across the whole patch (as a plain N-periodic
    FFT shift of a windowed patch does). The Nyquist bin of an even extension is zero, so
    the operator maps real data to real data.
    """
    L = x.shape[-1]
    ext = np.concatenate([x, x[..., ::-1]], axis=-1).astype(cdtype, copy=False)
    u = np.fft.fftfreq(2 * L)  # cycles per sample
    ramp = np.exp(-2j * np.pi * (f[:, None] * u[None, :])).astype(cdtype)
    spec = np.fft.fft(ext, axis=-1)
    spec *= ramp[:, None, :]
    return np.fft.ifft(spec, axis=-1)[..., :L]


def _bilinear_shift_last(x: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Shift the content of ``x`` (m, A, L) along its last axis by ``f`` (m,) pixels,
    ``|f| <= 1``, by linear interpolation between the two nearest pixels (the border
    pixel is repeated where the neighbour would fall outside the patch)."""
    a = np.abs(f)[:, None, None]
    prev = np.concatenate([x[..., :1], x[..., :-1]], axis=-1)  # x[j - 1], clamped
    nxt = np.concatenate([x[..., 1:], x[..., -1:]], axis=-1)  # x[j + 1], clamped
    neighbour = np.where((f > 0)[:, None, None], prev, nxt)
    return (1.0 - a) * x + a * neighbour


def _shift_and_crop(stack, frac, o, k, subpixel, out_dtype) -> np.ndarray:
    """Central ``k x k`` region (from patch pixel ``o``) of every patch, with patches
    whose fractional offset ``frac`` (n, 2) (x, y) is non-zero shifted by it first.

    Patches with an integer centre are copied untouched, so every sub-pixel mode equals
    ``"none"`` exactly for integer centres. The work is done in blocks of patches to
    bound the FFT temporaries.
    """
    used = np.array(stack[:, o : o + k, o : o + k], dtype=out_dtype)
    moving = np.flatnonzero(np.any(frac != 0.0, axis=1))
    if moving.size == 0:
        return used
    N = stack.shape[-1]
    is_complex = np.issubdtype(out_dtype, np.complexfloating)
    cdtype = np.result_type(out_dtype, np.complex64)
    block = max(1, _CHUNK_ELEMENTS // (2 * N * N))
    for s in range(0, moving.size, block):
        idx = moving[s : s + block]
        sub = stack[idx]
        fx, fy = frac[idx, 0], frac[idx, 1]
        if subpixel == "fourier":
            # Rows first (transpose so the row axis is last), keep only the used rows,
            # then columns, keep only the used columns.
            t = _fourier_shift_last(np.swapaxes(sub, -1, -2), fy, cdtype)
            t = np.swapaxes(t, -1, -2)[:, o : o + k, :]
            t = _fourier_shift_last(t, fx, cdtype)[:, :, o : o + k]
        else:  # bilinear
            work = cdtype if is_complex else np.float64
            t = _bilinear_shift_last(np.swapaxes(sub, -1, -2).astype(work), fy)
            t = np.swapaxes(t, -1, -2)[:, o : o + k, :]
            t = _bilinear_shift_last(t, fx)[:, :, o : o + k]
        used[idx] = t if is_complex else t.real
    return used


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


def _patch_weight(w, i: int):
    """Weight (scalar or (k, k) map) of patch ``i``, 1.0 when unweighted."""
    if w is None:
        return 1.0
    if w.ndim == 1:
        return w[i]
    return w[0] if w.shape[0] == 1 else w[i]


def _align_phases(used, r0, c0, k: int, shape, w) -> np.ndarray:
    """Per-patch constant phases ``theta`` (n,) such that ``used * exp(-1j*theta)`` agree
    on their overlaps (see :func:`stitch_by_positions`, ``align_phase``)."""
    n = used.shape[0]
    H, W = shape
    acc = np.zeros((H, W), dtype=np.complex128)  # weighted sum of aligned patches
    cnt = np.zeros((H, W), dtype=np.int64)
    theta = np.zeros(n, dtype=np.float64)
    # Visit patches by distance from the one nearest the scan's centroid, so every patch
    # (of a connected scan) tends to overlap patches already placed.
    centre = np.stack([r0, c0], axis=1).astype(np.float64)
    seed = int(np.argmin(((centre - centre.mean(axis=0)) ** 2).sum(axis=1)))
    order = np.argsort(((centre - centre[seed]) ** 2).sum(axis=1), kind="stable")

    # Pass 1: greedy, each patch aligned to the sum of the patches placed before it.
    for i in order:
        sl = (slice(r0[i], r0[i] + k), slice(c0[i], c0[i] + k))
        p = used[i] * _patch_weight(w, i)
        if cnt[sl].any():
            z = np.vdot(acc[sl], p)  # sum conj(canvas) * patch
            if z != 0:
                theta[i] = np.angle(z)
        acc[sl] += p * np.exp(-1j * theta[i])
        cnt[sl] += 1

    # Pass 2: Gauss-Seidel refinement, each patch re-aligned to all the others
    # (leave-one-out: its own contribution is removed from the sum first).
    for i in order:
        sl = (slice(r0[i], r0[i] + k), slice(c0[i], c0[i] + k))
        if cnt[sl].max() < 2:
            continue  # overlaps nothing: its phase is arbitrary, keep it
        p = used[i] * _patch_weight(w, i)
        rest = acc[sl] - p * np.exp(-1j * theta[i])
        z = np.vdot(rest, p)
        if z != 0:
            theta[i] = np.angle(z)
        acc[sl] = rest + p * np.exp(-1j * theta[i])

    # Fix the free global phase: zero circular mean rotation (consistent input -> ~0).
    m = np.exp(1j * theta).sum()
    if abs(m) > 1e-12 * n:
        theta -= np.angle(m)
    return theta


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
    check_choice("", "subpixel", subpixel, SUBPIXEL_MODES)
    check_bool("", "align_phase", align_phase)

    out_dtype = np.result_type(stack.dtype, np.float32)
    is_complex = np.issubdtype(out_dtype, np.complexfloating)
    if align_phase and not is_complex:
        raise ValueError(
            f"align_phase=True needs complex patches (got dtype {stack.dtype}); a constant "
            "phase offset is undefined for real images"
        )

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
    w = _as_weights(weights, n, N, o, k)

    if subpixel == "none":
        used = stack[:, o : o + k, o : o + k]
    else:
        used = _shift_and_crop(stack, c - xy, o, k, subpixel, out_dtype)
    if align_phase:
        theta = _align_phases(used, r0, c0, k, (H, W), w)
        used = used * np.exp(-1j * theta).astype(out_dtype)[:, None, None]

    # Linear canvas index of every used pixel = base[patch] + offset[pixel].
    base = r0 * W + c0
    ar = np.arange(k, dtype=np.int64)
    offset = (ar[:, None] * W + ar[None, :]).ravel()
    size = H * W
    acc_re = np.zeros(size, dtype=np.float64)
    acc_im = np.zeros(size, dtype=np.float64) if is_complex else None
    acc_w = np.zeros(size, dtype=np.float64) if w is not None else None
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

    coverage = _window_coverage(r0, c0, k, (H, W))

    total = acc_re if not is_complex else acc_re + 1j * acc_im
    total = total.reshape(H, W)
    canvas = np.zeros((H, W), dtype=out_dtype)
    if w is None:
        covered = coverage > 0
        canvas[covered] = (total[covered] / coverage[covered]).astype(out_dtype)
    else:
        wsum = acc_w.reshape(H, W)
        covered = wsum > 0
        canvas[covered] = (total[covered] / wsum[covered]).astype(out_dtype)
    return canvas, coverage


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
    xy = np.floor(np.asarray(centres, dtype=np.float64).reshape(-1, 2) + 0.5).astype(np.int64)
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
    xy = np.floor(c + 0.5).astype(np.int64)
    lo = xy.min(axis=0) - N // 2 + o  # (x, y) of the first used column / row
    hi = xy.max(axis=0) - N // 2 + o + k  # one past the last
    ox, oy = (int(margin - v) for v in lo)
    W, H = (int(v) for v in hi - lo + 2 * margin)
    return (H, W), (ox, oy)


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


def stitch(patches, centres, options: StitchOptions, *, canvas_shape=None, grid=None):
    """Stitch patches as ``options`` says; returns ``(image, coverage)``.

    Args:
        patches: (n, C, N, N) or (n, N, N).
        centres: (n, C, 2), (n, C, 1, 2) or (n, 2) absolute (x, y) patch centres (e.g.
            ``PtychoDataset.centres``); may be None in tiles mode.
        options: :class:`StitchOptions`.
        canvas_shape: positions mode: (H, W) of the canvas, in the centres' coordinates.
            Default: per axis, if every used patch pixel has a non-negative coordinate
            the canvas starts at object pixel 0 (image pixel = object pixel, as in
            :func:`stitch_patches`) and ends at the last used pixel; otherwise it starts
            at the first used pixel, i.e. the centres are shifted by the origin of
            :func:`canvas_for_positions` (call that function to learn the shift).
        grid: tiles mode: ``(n_side, stride)`` of the regular, row-major scan.

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
            c = np.asarray(centres, dtype=np.float64)
            if c.size != 2 * stack.shape[0] or c.shape[-1] != 2:
                raise ValueError(
                    f"centres: expected shape (n, 2) with n = {stack.shape[0]}, got {c.shape}"
                )
            c = c.reshape(-1, 2)
            i, j = np.meshgrid(np.arange(n_side), np.arange(n_side), indexing="ij")
            expected = c[0] + stride * np.stack([j.ravel(), i.ravel()], axis=1)
            if not np.allclose(c, expected, rtol=0.0, atol=1e-3):
                raise _tiles_refusal(
                    f"the centres are not a row-major {n_side}x{n_side} grid with step {stride}"
                )
        image = stitch_grid_tiles(stack, n_side, stride)
        return image, np.ones(image.shape, dtype=np.int64)

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
    )
