"""A scan with known truth simulated from any file that holds an object, a probe and
positions (e.g. ``data/run1084_recon3_postPC.npz``: a real object, the experimental probe
and a real scan's positions before and after position correction).

The counts are simulated at the file's **true** positions (``xcoords`` / ``ycoords``) with
the exact sub-pixel forward model of :mod:`ptycho.datagen.spiral_scan` and Poisson noise at
a chosen dose; the positions **written** with the scan are, by ``positions``:

* ``true``: the same positions;
* ``nominal``: the file's positions before correction (``xcoords_start`` / ``ycoords_start``),
  as a beamline's encoders would give them;

plus, with ``jitter_px`` > 0, Gaussian errors N(0, jitter_px) per axis. With ``n_positions``
= K, K of the file's positions are kept (:func:`subset_indices`, ``subset``): the first K, or
the K nearest the centre of the true positions' bounding box (a compact disc where the scan
is densest, not a strip of its first rows), in the file's order. With ``N`` larger
than the file's probe, the probe is made (N, N) by :func:`ptycho.probe_scaling.scale_probe`
(``probe_scale_mode``; ``pad`` keeps the pixel size, so the detector samples the far field
more finely: the same object and positions seen with more oversampling). The truth (the
object, the true positions and the unit-energy probe) goes with the scan
(:class:`ScanTruth`), so position correction and reconstructions can be scored.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ptycho.datagen.spiral_scan import SpiralScan, simulate_at_positions
from ptycho.forward import check_nphotons
from ptycho.formats.ptychopinn_npz import read_npz_arrays
from ptycho.probe_scaling import scale_probe

POSITION_CHOICES = ("true", "nominal")
SUBSET_CHOICES = ("dense", "first")
_TRUE = ("xcoords", "ycoords")
_NOMINAL = ("xcoords_start", "ycoords_start")


@dataclass(frozen=True, eq=False)
class ScanTruth:
    """What a simulated scan was made from: ``object`` (H, W) complex64, ``positions_px``
    (n, 2) (x, y) the true probe centres, ``probe`` (modes, N, N) complex64 of unit total
    energy (the scan's probe is ``photon_scale`` times it)."""

    object: np.ndarray
    positions_px: np.ndarray
    probe: np.ndarray
    photon_scale: float


def _refuse(path: str, key: str, what: str, allowed: str) -> ValueError:
    return ValueError(f"source '{path}': key '{key}' {what} (expected {allowed})")


def _positions(path: str, arrays: dict, keys: tuple[str, str], n: int) -> np.ndarray:
    """The first ``n`` (x, y) positions of ``keys`` (at least ``n`` of each)."""
    for k in keys:
        if k not in arrays:
            raise _refuse(path, k, "is missing", "1-D positions in object pixels")
    x, y = (np.asarray(arrays[k], np.float64).reshape(-1) for k in keys)
    if x.shape != y.shape or x.shape[0] < n:
        raise _refuse(path, keys[1], f"has {y.shape[0]} values for {x.shape[0]} in "
                      f"'{keys[0]}'", f"as many values as '{keys[0]}'")
    return np.stack([x, y], axis=1)[:n]


def _check_subset(subset: str) -> None:
    if subset not in SUBSET_CHOICES:
        raise ValueError(f"subset={subset!r} is not supported (allowed: "
                         f"{', '.join(SUBSET_CHOICES)})")


def subset_indices(xy: np.ndarray, k: int, subset: str = "dense") -> np.ndarray:
    """Indices, ascending (the scan's order), of ``k`` of the positions ``xy`` (n, 2):
    ``first``, the first k; ``dense``, the k nearest (Euclidean distance; ties to the lower
    index) the centre of the positions' bounding box. ``k`` <= 0 or >= n: all of them."""
    _check_subset(subset)
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    n = xy.shape[0]
    if k <= 0 or k >= n:
        return np.arange(n)
    if subset == "first":
        return np.arange(k)
    centre = (xy.min(axis=0) + xy.max(axis=0)) / 2
    distance = np.sqrt(np.sum((xy - centre) ** 2, axis=1))
    return np.sort(np.argsort(distance, kind="stable")[:k])


def _check_inside(path: str, shape: tuple, xy: np.ndarray, N: int) -> None:
    corner = np.floor(xy - N // 2)
    H, W = shape
    if (corner < 0).any() or (corner[:, 0] + N > W).any() or (corner[:, 1] + N > H).any():
        raise ValueError(f"source '{path}': an N={N} window at the positions 'xcoords' / "
                         f"'ycoords' leaves the ({H}, {W}) object (expected every position "
                         f"at least N/2 px inside; use a smaller N or fewer positions)")


def defocused(probe: np.ndarray, defocus: float) -> np.ndarray:
    """``probe`` (modes, N, N) with the quadratic phase ``defocus * (k / k_max)^2`` added in
    its far field (``k_max`` = N/2 frequency pixels): the same probe out of focus, as a wrong
    starting estimate of it (its energy is unchanged)."""
    N = probe.shape[-1]
    k = np.arange(N) - N // 2
    k2 = (k[:, None] ** 2 + k[None, :] ** 2) / (N / 2) ** 2
    f = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(probe, axes=(-2, -1)), norm="ortho"),
                        axes=(-2, -1))
    f = f * np.exp(1j * float(defocus) * k2)
    out = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(f, axes=(-2, -1)), norm="ortho"),
                          axes=(-2, -1))
    return out.astype(np.complex64)


def simulate_from_file(path, *, nphotons: float = 1e9, positions: str = "true",
                       jitter_px: float = 0.0, n_positions: int = 0, seed: int = 0,
                       bad_pixel_fraction: float = 0.0, probe_defocus: float = 0.0,
                       N: int = 0, probe_scale_mode: str = "pad", subset: str = "first"
                       ) -> tuple[SpiralScan, ScanTruth]:
    """Simulate the scan of the module docstring from the NPZ ``path`` (keys
    ``objectGuess``, ``probeGuess`` (N, N) or (modes, N, N), ``xcoords``, ``ycoords`` and,
    for ``positions="nominal"``, ``xcoords_start`` / ``ycoords_start``).

    ``n_positions`` > 0 keeps that many positions, chosen by ``subset``
    (:func:`subset_indices`: ``first`` or ``dense``). ``seed`` draws the bad pixels,
    the Poisson noise, then the jitter. ``probe_defocus`` (radians at the window's edge
    frequency, :func:`defocused`): the probe written with the scan is the true one out of
    focus (a wrong estimate); the counts always use the true probe. ``N`` > 0: the pattern
    size, the probe prepared to it by ``probe_scale_mode`` (0: the probe's own size); a
    position whose N x N window leaves the object is refused. Returns the scan (its
    ``positions_px`` are the written positions, its ``probe`` the written one, in photon
    units) and the truth.
    """
    path = str(path)
    if positions not in POSITION_CHOICES:
        raise ValueError(f"positions={positions!r} is not supported (allowed: "
                         f"{', '.join(POSITION_CHOICES)})")
    _check_subset(subset)
    if not (np.isfinite(jitter_px) and jitter_px >= 0):
        raise ValueError(f"jitter_px={jitter_px!r} is out of range (allowed: a number >= 0)")
    check_nphotons(nphotons)
    arrays, _ = read_npz_arrays(path, required=("objectGuess", "probeGuess") + _TRUE)
    for key, what in (("objectGuess", "a complex (H, W) object"),
                      ("probeGuess", "a complex (N, N) or (modes, N, N) probe")):
        if key not in arrays:
            raise _refuse(path, key, "is missing", what)
    obj = np.asarray(arrays["objectGuess"], np.complex64)
    probe = np.asarray(arrays["probeGuess"], np.complex128)
    for key, a in (("objectGuess", obj), ("probeGuess", probe)):
        if not np.isfinite(a).all():
            n_nan = int(np.isnan(a).sum())
            raise _refuse(path, key, f"contains non-finite values ({n_nan} NaN, "
                          f"{int((~np.isfinite(a)).sum()) - n_nan} Inf)", "finite values only")
    if not float(np.sum(np.abs(probe) ** 2)) > 0:
        raise _refuse(path, "probeGuess", "is all zeros", "a probe with nonzero intensity")
    modes = probe[None] if probe.ndim == 2 else probe
    n_all = int(np.asarray(arrays["xcoords"]).reshape(-1).shape[0])
    true_xy = _positions(path, arrays, _TRUE, n_all)
    keep = subset_indices(true_xy, int(n_positions), subset)
    true_xy = true_xy[keep]
    written = (true_xy if positions == "true"
               else _positions(path, arrays, _NOMINAL, int(keep.max(initial=-1)) + 1)[keep])
    if N and N != modes.shape[-1]:
        modes = np.asarray(scale_probe(modes, int(N), probe_scale_mode), np.complex128)
        modes = modes[None] if modes.ndim == 2 else modes
    unit = (modes / np.sqrt(np.sum(np.abs(modes) ** 2))).astype(np.complex64)
    N = unit.shape[-1]
    _check_inside(path, obj.shape, true_xy, N)
    rng = np.random.default_rng(seed)
    scan = simulate_at_positions(obj, N, true_xy, unit, nphotons, rng, bad_pixel_fraction)
    if jitter_px > 0:
        written = written + rng.normal(0.0, float(jitter_px), size=written.shape)
    truth = ScanTruth(object=obj, positions_px=true_xy, probe=unit,
                      photon_scale=scan.photon_scale)
    written_probe = defocused(unit, probe_defocus) if probe_defocus else unit
    return replace(scan, positions_px=np.ascontiguousarray(written),
                   probe=(written_probe * scan.photon_scale).astype(np.complex64)), truth


def dataset_arrays(scan: SpiralScan, truth: ScanTruth) -> tuple[dict, dict]:
    """The scan as this project's dataset NPZ (:func:`ptycho.io.save_dataset` arrays and
    metadata), gridsize 1, with the true object as ``YY_ground_truth``: amplitudes
    ``sqrt(counts) / s``, the written positions as ``coords_offsets``, the written probe in
    the dataset's units (``scan.probe / s``) and the true positions in the metadata
    (``true_positions_px``). A scan with bad pixels is refused (the format has no mask)."""
    if scan.bad_pixels.any():
        raise ValueError("dataset_arrays: the scan has bad pixels, which this project's "
                         "dataset NPZ cannot hold (expected bad_pixel_fraction=0; the other "
                         "layouts keep them)")
    amp = (np.sqrt(scan.counts.astype(np.float64)) / scan.photon_scale).astype(np.float32)
    probe = (scan.probe.astype(np.complex128) / scan.photon_scale).astype(np.complex64)
    probe = probe[0] if probe.shape[0] == 1 else probe
    arrays = {"diffraction": amp,
              "coords_offsets": scan.positions_px.astype(np.float32),
              "coords_nominal": np.zeros((scan.n, 2), np.float32),
              "probeGuess": probe, "YY_ground_truth": truth.object,
              "object_index": np.zeros(scan.n, np.int32),
              "pattern_index": np.arange(scan.n, dtype=np.int64)[:, None]}
    metadata = {"scale": float(scan.photon_scale),
                "mean_counts_per_pattern": float(scan.counts.sum((1, 2)).mean()),
                "true_positions_px": truth.positions_px.tolist()}
    return arrays, metadata
