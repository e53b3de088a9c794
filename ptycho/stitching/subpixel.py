"""Sub-pixel placement: a patch resampled by its fractional offset before it is placed."""
from __future__ import annotations

import numpy as np

from ptycho.stitching._common import _CHUNK_ELEMENTS

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
