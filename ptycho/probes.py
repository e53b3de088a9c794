"""Probes: the defocused circular aperture of the grid-lines study and a two-mode probe
(for simulation), the sub-pixel shift of probe modes, the fit of a probe to size N, and a
probe from elsewhere brought to a scan's units (:func:`scale_to_patterns`).

Conventions: a probe is complex (N, N), or (modes, N, N) for incoherent modes, centred at
pixel (N//2, N//2); shifts are in pixels, (x, y) = (column, row).
"""
from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft

__all__ = ["fit_probe", "make_probe", "probe_fill", "probe_recipe", "scale_to_patterns",
           "two_mode_probe", "shift_modes"]


def make_probe(N: int, pupil_radius: float = 0.1875, defocus: float = 14.0) -> np.ndarray:
    """Deterministic defocused circular-aperture probe, complex64 (N, N).

    In k-space (centred grid, DC at index N//2) the pupil is a disk of radius
    ``R = pupil_radius*N`` pixels carrying the quadratic phase ``defocus*(k/R)**2``. The
    probe is ``fftshift(ifft2(ifftshift(pupil), norm="ortho"))``, so it is centred at
    pixel (N//2, N//2) (symmetric about it), normalized to ``max |P| = 1``.
    """
    N = int(N)
    R = float(pupil_radius) * N
    k = np.arange(N) - N // 2
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    inside = k2 <= R * R
    pupil = np.where(inside, np.exp(1j * float(defocus) * k2 / (R * R)), 0.0)
    probe = sfft.fftshift(sfft.ifft2(sfft.ifftshift(pupil), norm="ortho"))
    probe = probe / np.abs(probe).max()
    return probe.astype(np.complex64)


def probe_recipe(N: int, pupil_radius: float = 0.1875, defocus: float = 14.0) -> dict:
    """JSON-able description of :func:`make_probe` with these arguments (for metadata)."""
    return {
        "kind": "defocused_circular_aperture",
        "N": int(N),
        "pupil_radius_fraction_of_N": float(pupil_radius),
        "pupil_radius_px": float(pupil_radius) * int(N),
        "defocus_rad_at_pupil_edge": float(defocus),
        "construction": "pupil = disk(k <= R) * exp(i*defocus*(k/R)^2) on a centred k-grid; "
                        "P = fftshift(ifft2(ifftshift(pupil), norm='ortho'))",
        "normalization": "max|P| = 1",
        "centre_px": [int(N) // 2, int(N) // 2],
    }


def two_mode_probe(N: int, second_mode_power: float = 0.25) -> np.ndarray:
    """(2, N, N) complex64: ``make_probe(N)`` and a weaker mode orthogonal to it.

    The second mode is the first times a vortex ``(x + i y)``, Gram-Schmidt
    orthogonalised to the first, with ``second_mode_power`` of its power.
    """
    m1 = make_probe(N).astype(np.complex128)
    yy, xx = np.mgrid[0:N, 0:N] - N // 2
    m2 = m1 * (xx + 1j * yy) / (N / 8.0)
    m2 -= np.vdot(m1, m2) / np.vdot(m1, m1) * m1
    m2 *= math.sqrt(second_mode_power * np.vdot(m1, m1).real / np.vdot(m2, m2).real)
    return np.stack([m1, m2]).astype(np.complex64)


def shift_modes(modes: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """Probe modes moved by (fx, fy) pixels, ``P(r - f)``, with a Fourier phase ramp."""
    N = modes.shape[-1]
    k = np.fft.fftfreq(N)
    ramp = np.exp(-2j * math.pi * (k[:, None] * fy + k[None, :] * fx))
    return np.fft.ifft2(np.fft.fft2(modes.astype(np.complex128)) * ramp)


def fit_probe(probe: np.ndarray, N: int) -> np.ndarray:
    """``probe`` (modes, H, W) fitted to (N, N) (or (modes, N, N)), by this rule.

    A probe of size N is kept; a smaller one is zero-padded symmetrically (its centre stays
    at pixel N//2); a larger one is cut to its central N x N window, which is refused when
    that window keeps less than 99 % of the probe's intensity (resampling would change the
    pixel size, so it is never done).
    """
    p = np.asarray(probe, dtype=np.complex64)
    p = p[None] if p.ndim == 2 else p
    H, W = p.shape[-2:]
    if H != W:
        raise ValueError(f"probe has shape {p.shape} (expected square modes (modes, H, H))")
    out: np.ndarray
    if H < N:
        lo = N // 2 - H // 2
        out = np.zeros(p.shape[:-2] + (N, N), np.complex64)
        out[..., lo:lo + H, lo:lo + H] = p
    elif H > N:
        lo = H // 2 - N // 2
        out = p[..., lo:lo + N, lo:lo + N]
        kept = float(np.sum(np.abs(out) ** 2) / max(np.sum(np.abs(p) ** 2), 1e-300))
        if kept < 0.99:
            raise ValueError(f"probe of size {H} keeps only {100 * kept:.1f} % of its intensity "
                             f"in the central {N} x {N} window (expected >= 99 %; choose N >= "
                             f"{H} or a probe that fits)")
    else:
        out = p
    out = np.ascontiguousarray(out)
    return out[0] if out.shape[0] == 1 else out


def scale_to_patterns(probe: np.ndarray, patterns: np.ndarray) -> tuple[np.ndarray, float]:
    """``(k * probe, k)``: ``probe`` (N, N) or (modes, N, N) in the units of ``patterns``
    (n, N, N) diffraction amplitudes, by this rule.

    ``k`` is the one real factor > 0 for which the probe, through a unit-amplitude object,
    predicts the patterns' mean total intensity: ``k**2 * sum |P|**2 = mean_n sum A**2``
    (Parseval for the unitary FFT of the forward model; modes add in intensity; pixels the
    detector did not measure are zero in ``patterns`` and count nothing). A probe from
    another file carries that file's scale; after this the object the network learns has a
    mean intensity of about 1 (the object / probe scale is not determined by the data).
    Raises ValueError when the probe or the patterns have no intensity.
    """
    p = np.asarray(probe)
    energy = float(np.sum(np.abs(p.astype(np.complex128)) ** 2))
    amp = np.asarray(patterns, dtype=np.float64)
    measured = float(np.mean(np.sum(np.square(amp), axis=(-2, -1))))
    if not (np.isfinite(energy) and energy > 0 and np.isfinite(measured) and measured > 0):
        raise ValueError(f"cannot scale the probe to the patterns: probe intensity {energy:.4g}, "
                         f"mean pattern intensity {measured:.4g} (expected both > 0)")
    k = float(np.sqrt(measured / energy))
    return (p.astype(np.complex128) * k).astype(np.complex64), k


def probe_fill(probe: np.ndarray, energy: float = 0.9) -> float:
    """The fraction of the probe's (N, N) window inside the disk, about the intensity
    centroid, that holds ``energy`` of its energy (modes summed in intensity): ``pi
    r**2 / N**2``. A single pattern constrains its patch less as the fill grows."""
    p = np.asarray(probe)
    intensity = (np.abs(p.reshape((-1,) + p.shape[-2:])) ** 2).sum(axis=0).astype(np.float64)
    total = intensity.sum()
    if not total > 0:
        raise ValueError("probe_fill: the probe has no energy")
    rows, cols = np.indices(intensity.shape)
    cy, cx = (intensity * rows).sum() / total, (intensity * cols).sum() / total
    r = np.hypot(rows - cy, cols - cx).ravel()
    order = np.argsort(r)
    cum = np.cumsum(intensity.ravel()[order]) / total
    r_e = float(r[order][np.searchsorted(cum, energy)])
    return float(np.pi * r_e ** 2 / intensity.size)
