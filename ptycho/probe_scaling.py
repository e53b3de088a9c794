"""A probe of another size made into an (N, N) probe for simulation: the reference's three
preparations, and plain zero-padding.

The reference simulated its N=128 grid-lines data with an experimental 64 x 64 probe made
larger by one of these (``--probe-scale-mode``, with ``--probe-npz``):

* ``pad``: :func:`ptycho.probes.fit_probe` (zero-pad, or cut a larger probe); no smoothing.
  The default: it keeps the pixel size and the values.
* ``pad_preserve``: smooth (:func:`smooth_probe`), then zero-pad to N.
* ``pad_extrapolate``: the amplitude edge-padded to N (each outer pixel takes the value of
  the nearest edge pixel), the phase replaced by the quadratic radial phase fitted to the
  probe (:func:`fit_quadratic_phase`) over the whole N x N window, inside the original
  window too (the reference's ``pad_extrapolate``), then smoothed.
* ``interpolate``: the real and imaginary parts resampled by N / H with cubic splines
  (``scipy.ndimage.map_coordinates``, order 3, centre pixel onto centre pixel, zero
  outside): the probe spans more pixels (its pixel size changes).

Conventions: a probe is complex (H, H), or (modes, H, H), centred at pixel (H//2, H//2);
``sigma`` is the Gaussian smoothing width in pixels (0: none); every mode is treated alone.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.restoration import unwrap_phase

from ptycho.config.choices import PROBE_SCALE_MODES
from ptycho.probes import fit_probe

__all__ = ["fit_quadratic_phase", "scale_probe", "smooth_probe"]

def _radius2(n: int) -> np.ndarray:
    c = np.arange(n) - n // 2
    return (c[:, None] ** 2 + c[None, :] ** 2).astype(np.float64)


def smooth_probe(probe: np.ndarray, sigma: float) -> np.ndarray:
    """One mode (H, H) with its amplitude and its unwrapped phase each smoothed by a
    Gaussian of ``sigma`` pixels (0: unchanged)."""
    p = np.asarray(probe, dtype=np.complex128)
    if sigma <= 0:
        return p
    amp = ndimage.gaussian_filter(np.abs(p), sigma, mode="nearest")
    phase = ndimage.gaussian_filter(unwrap_phase(np.angle(p)), sigma, mode="nearest")
    return amp * np.exp(1j * phase)


def fit_quadratic_phase(probe: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` of the radial phase ``a + b r**2`` (r in pixels from (H//2, H//2)) that
    fits the unwrapped phase of one mode (H, H) best in least squares weighted by |P|^2."""
    p = np.asarray(probe, dtype=np.complex128)
    w = np.abs(p).ravel() ** 2
    phase = unwrap_phase(np.angle(p)).ravel()
    design = np.stack([np.ones_like(w), _radius2(p.shape[-1]).ravel()], axis=1)
    sw = np.sqrt(w / w.sum())
    (a, b), *_ = np.linalg.lstsq(design * sw[:, None], phase * sw, rcond=None)
    return float(a), float(b)


def _extrapolate(mode: np.ndarray, N: int, sigma: float) -> np.ndarray:
    H = mode.shape[-1]
    lo = N // 2 - H // 2
    amp = np.pad(np.abs(mode), ((lo, N - H - lo), (lo, N - H - lo)), mode="edge")
    a, b = fit_quadratic_phase(mode)
    return smooth_probe(amp * np.exp(1j * (a + b * _radius2(N))), sigma)


def _interpolate(mode: np.ndarray, N: int) -> np.ndarray:
    H = mode.shape[-1]
    src = (np.arange(N) - N // 2) * (H / N) + H // 2  # centre pixel to centre pixel
    rows, cols = np.meshgrid(src, src, indexing="ij")
    part = [ndimage.map_coordinates(x, [rows, cols], order=3, mode="constant", cval=0.0)
            for x in (mode.real, mode.imag)]
    return part[0] + 1j * part[1]


def scale_probe(probe: np.ndarray, N: int, mode: str = "pad", sigma: float = 0.5
                ) -> np.ndarray:
    """``probe`` (H, H) or (modes, H, H) made (N, N) (one mode) or (modes, N, N) complex64 by
    ``mode`` (module docstring). Raises ValueError for an unknown mode, a non-square
    probe, or a probe larger than N in the modes that only enlarge."""
    if mode not in PROBE_SCALE_MODES:
        raise ValueError(f"probe scale mode {mode!r} is not allowed (choose one of: "
                         f"{', '.join(PROBE_SCALE_MODES)})")
    if mode == "pad":
        return fit_probe(probe, N)  # it checks the shape itself
    p = np.asarray(probe, dtype=np.complex128)
    p = p[None] if p.ndim == 2 else p
    H, W = p.shape[-2:]
    if H != W:
        raise ValueError(f"probe has shape {p.shape} (expected square modes (modes, H, H))")
    if H > N:
        raise ValueError(f"probe of size {H} is larger than N={N} (probe scale mode {mode!r} "
                         f"only enlarges; use 'pad' to cut it, or N >= {H})")
    if mode == "pad_preserve":
        out = fit_probe(np.stack([smooth_probe(m, sigma) for m in p]), N)
        out = out.reshape((-1, N, N))
    elif mode == "pad_extrapolate":
        out = np.stack([_extrapolate(m, N, sigma) for m in p])
    else:
        out = np.stack([_interpolate(m, N) for m in p])
    out = np.ascontiguousarray(out.astype(np.complex64))
    return out[0] if out.shape[0] == 1 else out  # one mode: (N, N), as fit_probe
