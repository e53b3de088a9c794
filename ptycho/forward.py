"""The numpy far-field forward model of the simulators: detector amplitudes of object
patches under a probe (modes add in intensity), the photon scale of a dose, Poisson counts.

``A = fftshift(|fft2(O * P, norm="ortho")|)`` per pattern (DC at pixel (N//2, N//2)),
``sqrt(sum_k |F(O * P_k)|^2)`` for probe modes; the same convention as
``ptycho_torch.core.physics``. :func:`expected_intensity` adds exact sub-pixel probe shifts for
scans at arbitrary positions.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
import scipy.fft as sfft

from ptycho.probes import shift_modes

__all__ = ["check_nphotons", "counts_array", "diffraction_amplitude", "expected_intensity",
           "simulation_scale"]

# Complex elements per FFT chunk (8 Mi complex64 = 64 MiB).
_CHUNK_ELEMS = 1 << 23
# Elements per Poisson noise chunk (fixed: the noise depends on it; see poisson_amplitude).
_NOISE_CHUNK = 1 << 22


def probe_modes_of(probe: np.ndarray, N: int, owner: str = "") -> np.ndarray:
    """``probe`` (N, N) or (modes, N, N) as complex64 (modes, N, N); a one-line ValueError
    (prefixed by ``owner``) for any other shape."""
    p = np.asarray(probe, dtype=np.complex64)
    if p.ndim == 2:
        p = p[None]
    prefix = f"{owner}: " if owner else ""
    if p.ndim != 3 or p.shape[1:] != (N, N):
        raise ValueError(f"{prefix}probe has shape {np.shape(probe)} (expected ({N}, {N}) or "
                         f"(modes, {N}, {N}) to match the patches)")
    if not np.isfinite(p).all():
        n_nan = int(np.isnan(p).sum())
        raise ValueError(f"{prefix}probe contains non-finite values ({n_nan} NaN, "
                         f"{int((~np.isfinite(p)).sum()) - n_nan} Inf) (expected finite values "
                         "only)")
    return p


def check_nphotons(nphotons, owner: str = "nphotons") -> float:
    """``nphotons`` (mean counts per pattern) as a float, refused in one line unless finite
    and > 0: a dose of 0 gives all-zero patterns, a negative one no Poisson draw."""
    v = float(nphotons)
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"{owner}={v!r} is out of range (allowed: a finite number > 0 of "
                         "mean counts per pattern)")
    return v


def counts_array(counts: np.ndarray) -> np.ndarray:
    """Poisson counts (non-negative integers) in the dtype the writers store: uint32 when
    every count fits, else uint64 (never a silent wrap above 2**32 - 1)."""
    c = np.asarray(counts)
    top = int(c.max()) if c.size else 0
    return c.astype(np.uint32 if top <= np.iinfo(np.uint32).max else np.uint64)


def diffraction_amplitude(obj_patches: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """Far-field amplitude ``fftshift(|fft2(O*P, norm="ortho")|)`` over the last two axes.

    Args:
        obj_patches: complex (..., N, N).
        probe: complex (N, N), or (K, N, N) modes summed incoherently in intensity.

    Returns:
        float32 with the shape of ``obj_patches``. Computed in chunks (about 64 MiB
        of complex64 each) with a multithreaded FFT.
    """
    x = np.asarray(obj_patches)
    N = x.shape[-1]
    if x.ndim < 2 or x.shape[-2] != N:
        raise ValueError(f"obj_patches has shape {x.shape} (expected (..., N, N))")
    modes = probe_modes_of(probe, N)
    K = modes.shape[0]
    flat = x.reshape(-1, N, N)
    out = np.empty(flat.shape, dtype=np.float32)
    chunk = max(1, _CHUNK_ELEMS // (N * N * K))
    workers = os.cpu_count() or 1
    for s in range(0, flat.shape[0], chunk):
        psi = flat[s:s + chunk, None].astype(np.complex64, copy=False) * modes  # (b,K,N,N)
        f = sfft.fft2(psi, norm="ortho", workers=workers, overwrite_x=True)
        if K == 1:
            a = np.abs(f[:, 0])
        else:
            a = np.sqrt((f.real ** 2 + f.imag ** 2).sum(axis=1))
        out[s:s + chunk] = sfft.fftshift(a, axes=(-2, -1))
    return out.reshape(x.shape)


def _sum_intensity(patches: np.ndarray, modes: np.ndarray) -> tuple[float, int]:
    """Sum over patches of sum_xy sum_k |O*P_k|^2 (float64) and the patch count."""
    p = np.asarray(patches)
    N = p.shape[-1]
    flat = p.reshape(-1, N, N)
    w = (np.abs(modes) ** 2).sum(axis=0).astype(np.float64)        # (N, N)
    chunk = max(1, _CHUNK_ELEMS // (N * N))
    total = 0.0
    for s in range(0, flat.shape[0], chunk):
        blk = flat[s:s + chunk]
        total += float(np.einsum("bij,ij->", (blk.real.astype(np.float64) ** 2
                                               + blk.imag.astype(np.float64) ** 2), w))
    return total, flat.shape[0]


def simulation_scale(obj_patches: np.ndarray | Sequence[np.ndarray], probe: np.ndarray,
                     nphotons: float) -> float:
    """``s = sqrt(nphotons / mean_patches(sum_xy |O*P|^2))``.

    Args:
        obj_patches: complex (..., N, N), or a list / iterable (e.g. a generator, to bound
            memory) of such arrays; the mean is over all their patches together.
        probe: (N, N) or (K, N, N) (mode intensities summed).
        nphotons: target mean total counts per pattern.
    """
    arrays = [obj_patches] if isinstance(obj_patches, np.ndarray) else obj_patches
    total, count = 0.0, 0
    for a in arrays:  # may be a generator: one array alive at a time
        a = np.asarray(a)
        t, c = _sum_intensity(a, probe_modes_of(probe, a.shape[-1]))
        total += t
        count += c
    if count == 0:
        raise ValueError("simulation_scale: no patches given (expected at least one patch)")
    mean = total / count
    if not np.isfinite(mean):
        raise ValueError(f"simulation_scale: mean patch intensity is {mean!r} (expected a "
                         "finite value; the object holds NaN or Inf)")
    if not mean > 0:
        raise ValueError(f"simulation_scale: mean patch intensity is {mean!r} "
                         "(expected > 0; object or probe is all zeros)")
    return float(np.sqrt(check_nphotons(nphotons, "simulation_scale: nphotons") / mean))


def poisson_amplitude(amp: np.ndarray, scale: float, rng: np.random.Generator
                       ) -> np.ndarray:
    """``sqrt(Poisson((s*A)^2)) / s`` as float32, same shape as ``amp``.

    The flattened array is cut into fixed chunks of ``_NOISE_CHUNK`` elements; chunk i
    is drawn by ``numpy.random.default_rng(seed_i).poisson`` where the seeds are drawn
    from ``rng`` first (one integer per chunk). numpy releases the GIL while sampling, so
    chunks run on a thread pool; the result depends only on ``rng``'s state, never on
    the number of threads.
    """
    flat = amp.reshape(-1)
    out = np.empty(flat.shape, np.float32)
    starts = range(0, flat.size, _NOISE_CHUNK)
    seeds = rng.integers(0, 2 ** 63, size=len(starts), dtype=np.int64)
    s = float(scale)

    def work(i: int) -> None:
        a = starts[i]
        lam = flat[a:a + _NOISE_CHUNK].astype(np.float64)
        lam *= s
        lam *= lam
        counts = np.random.default_rng(int(seeds[i])).poisson(lam)
        out[a:a + _NOISE_CHUNK] = np.sqrt(counts, dtype=np.float64) / s

    n_threads = min(os.cpu_count() or 1, len(starts))
    if n_threads <= 1:
        for i in range(len(starts)):
            work(i)
    else:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            list(pool.map(work, range(len(starts))))
    return out.reshape(amp.shape)


def expected_intensity(obj: np.ndarray, modes: np.ndarray, positions_px: np.ndarray,
                       N: int) -> np.ndarray:
    """(n, N, N) float64 ``fftshift(sum_k |fft2(O_patch * P_k(r - f), ortho)|**2)``.

    ``positions_px`` are probe centres (x, y); the patch starts at ``floor(c - N // 2)``.
    """
    modes = np.asarray(modes)
    if modes.ndim == 2:
        modes = modes[None]
    pos = np.asarray(positions_px, np.float64)
    corner = pos - N // 2
    i0 = np.floor(corner).astype(np.int64)
    frac = corner - i0
    H, W = obj.shape
    if (i0 < 0).any() or (i0[:, 0] + N > W).any() or (i0[:, 1] + N > H).any():
        raise ValueError(f"expected_intensity: a patch falls off the ({H}, {W}) object "
                         "(expected every probe position at least N/2 + 1 px inside)")
    out = np.empty((len(pos), N, N), np.float64)
    for j, ((c0, r0), (fx, fy)) in enumerate(zip(i0, frac, strict=True)):
        patch = obj[r0:r0 + N, c0:c0 + N].astype(np.complex128)
        psi = patch[None] * shift_modes(modes, fx, fy)
        f = np.fft.fft2(psi, norm="ortho")
        out[j] = np.fft.fftshift((f.real ** 2 + f.imag ** 2).sum(axis=0))
    return out
