"""A small, physically exact Fermat-spiral ptychography simulator.

Used by the format tests (its scans are written in each layout by the writers of
:mod:`ptycho.formats`, ``docs/reference/formats.md``). numpy only.

Forward model (far field, unitary FFT, DC at the centre):

- Positions: Fermat spiral ``r_k = step * sqrt(k / pi)``, ``theta_k = k * golden angle``
  (each point owns ``step**2`` of area, like a raster of that step), centred on the object
  centre ``(W / 2, H / 2)``, plus uniform jitter in ``[-jitter, +jitter]`` px per axis.
  Positions are probe centres ``(x, y) = (column, row)`` in object pixels, sub-pixel.
- Sub-pixel shifts are exact: the object patch is cut at the integer corner
  ``floor(c - N // 2)`` and each probe mode is moved by the fractional part ``f`` with a
  Fourier phase ramp, ``P(r - f)``. Probes from :func:`ptycho.probes.make_probe`
  are band-limited and periodic on the N grid, so this shift is exact for them.
- Intensity: ``I = fftshift(sum_k |fft2(O_patch * P_k(r - f), norm="ortho")|**2)``.
- Photon scale: ``s**2 = nphotons / mean_patterns(sum I)``; counts = ``Poisson(s**2 I)``,
  and bad pixels are set to 0. The probe stored with the scan is ``s * P`` (photon units),
  so ``|F{O * P_stored}|**2`` is the expected count, as in a Ptychodus product.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ptycho.forward import check_nphotons, counts_array, expected_intensity, probe_modes_of

__all__ = [
    "GOLDEN_ANGLE",
    "SpiralScan",
    "fermat_spiral",
    "simulate_at_positions",
    "simulate_spiral_scan",
]

GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))


@dataclass(frozen=True, eq=False)
class SpiralScan:
    """Simulated scan, shaped like a :class:`ptycho.formats.RawScan`.

    ``counts`` (n, N, N) uint32, uint64 when a count exceeds 2**32 - 1 (bad pixels 0;
    :func:`ptycho.forward.counts_array`); ``positions_px`` (n, 2) float64 (x, y);
    ``probe`` (modes, N, N) complex64 in photon units; ``bad_pixels`` (N, N) bool;
    ``object`` (H, W) complex64; ``scan_index`` (n,) int64 zeros; ``photon_scale`` s (the
    probe is ``s`` times the unit-scaled modes given to the simulator). It is a
    :class:`ptycho.formats.scan_with_truth.ScanWithTruth`: the format writers take it.
    """

    counts: np.ndarray
    positions_px: np.ndarray
    probe: np.ndarray
    bad_pixels: np.ndarray
    object: np.ndarray
    scan_index: np.ndarray
    photon_scale: float

    @property
    def n(self) -> int:
        return int(self.counts.shape[0])

    @property
    def N(self) -> int:
        return int(self.counts.shape[-1])


def fermat_spiral(n_positions: int, step_px: float) -> np.ndarray:
    """(n, 2) float64 offsets (x, y) of a Fermat spiral with the golden angle."""
    k = np.arange(int(n_positions), dtype=np.float64)
    r = float(step_px) * np.sqrt(k / math.pi)
    t = k * GOLDEN_ANGLE
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def simulate_spiral_scan(object: np.ndarray, N: int, n_positions: int,
                         step_px: float, jitter_px: float, probe_modes: np.ndarray,
                         nphotons: float, seed: int,
                         bad_pixel_fraction: float = 0.0) -> SpiralScan:
    """Simulate a jittered Fermat-spiral scan with Poisson counts (module docstring).

    Args:
        object: complex (H, W), e.g. :func:`ptycho.datagen.grid_lines.make_object`.
        N: pattern size; ``probe_modes`` (modes, N, N) or (N, N), any scale.
        n_positions, step_px, jitter_px: the spiral (see :func:`fermat_spiral`).
        nphotons: mean total counts per pattern (before bad pixels are zeroed).
        seed: ``numpy.random.default_rng(seed)`` draws the jitter, the bad pixels (exactly
            ``round(fraction * N * N)`` of them), then the Poisson noise.
    """
    obj = np.asarray(object, np.complex64)
    modes = probe_modes_of(probe_modes, N, "simulate_spiral_scan")
    rng = np.random.default_rng(seed)
    H, W = obj.shape
    pos = fermat_spiral(n_positions, step_px) + np.array([W / 2.0, H / 2.0])
    pos = pos + rng.uniform(-jitter_px, jitter_px, size=pos.shape)
    return simulate_at_positions(obj, N, pos, modes, nphotons, rng, bad_pixel_fraction)


def simulate_at_positions(object: np.ndarray, N: int, positions_px: np.ndarray,
                          probe_modes: np.ndarray, nphotons: float, rng: np.random.Generator,
                          bad_pixel_fraction: float = 0.0) -> SpiralScan:
    """Simulate Poisson counts of ``object`` at given probe centres ``positions_px``
    ((n, 2) (x, y) object pixels, sub-pixel; e.g. a real scan's positions), with the
    forward model of the module docstring. ``rng`` draws exactly ``round(fraction * N *
    N)`` bad pixels, then the Poisson noise (:func:`simulate_spiral_scan` passes its rng
    after drawing the jitter)."""
    obj = np.asarray(object, np.complex64)
    modes = probe_modes_of(probe_modes, N, "simulate_at_positions")
    pos = np.asarray(positions_px, np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2 or pos.shape[0] < 1:
        raise ValueError(f"simulate_at_positions: positions_px has shape {pos.shape} "
                         "(expected (n, 2) (x, y) with n >= 1)")
    n_bad = int(round(float(bad_pixel_fraction) * N * N))
    bad = np.zeros((N, N), bool)
    bad.flat[rng.choice(N * N, size=n_bad, replace=False)] = True
    nphotons = check_nphotons(nphotons, "simulate_at_positions: nphotons")
    inten = expected_intensity(obj, modes, pos, N)
    s2 = nphotons / float(inten.sum(axis=(1, 2)).mean())
    counts = rng.poisson(s2 * inten)
    counts[:, bad] = 0
    s = math.sqrt(s2)
    return SpiralScan(counts=counts_array(counts), positions_px=pos,
                      probe=(modes.astype(np.complex128) * s).astype(np.complex64),
                      bad_pixels=bad, object=obj, scan_index=np.zeros(len(pos), np.int64),
                      photon_scale=s)

