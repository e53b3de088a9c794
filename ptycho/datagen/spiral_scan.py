"""A small, physically exact Fermat-spiral ptychography simulator and the file layouts.

Used by the format tests and as executable documentation of each layout
(``docs/data.md``). numpy + h5py only.

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
from pathlib import Path

import numpy as np

from ptycho.forward import expected_intensity, probe_modes_of
from ptycho.formats.ptychodus import CONVENTIONAL_GEOMETRY, pixels_to_metres, write_product
from ptycho.formats.raw_scan import ELECTRON_VOLT_J, ScanGeometry, wavelength_m

__all__ = [
    "GOLDEN_ANGLE",
    "SpiralScan",
    "conventional_geometry",
    "fermat_spiral",
    "simulate_at_positions",
    "simulate_spiral_scan",
    "write_cxi",
    "write_ptychodus",
    "write_ptychodus_npz_product",
    "write_ptychopinn_npz",
]

GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))


@dataclass(frozen=True, eq=False)
class SpiralScan:
    """Simulated scan, shaped like a :class:`ptycho.formats.RawScan`.

    ``counts`` (n, N, N) uint32 (bad pixels 0); ``positions_px`` (n, 2) float64 (x, y);
    ``probe`` (modes, N, N) complex64 in photon units; ``bad_pixels`` (N, N) bool;
    ``object`` (H, W) complex64; ``scan_index`` (n,) int64 zeros; ``photon_scale`` s (the
    probe is ``s`` times the unit-scaled modes given to the simulator).
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
    bad = np.zeros(N * N, bool)
    bad[rng.choice(N * N, size=n_bad, replace=False)] = True
    bad = bad.reshape(N, N)
    inten = expected_intensity(obj, modes, pos, N)
    s2 = float(nphotons) / float(inten.sum(axis=(1, 2)).mean())
    counts = rng.poisson(s2 * inten)
    counts[:, bad] = 0
    s = math.sqrt(s2)
    return SpiralScan(counts=counts.astype(np.uint32), positions_px=pos,
                      probe=(modes.astype(np.complex128) * s).astype(np.complex64),
                      bad_pixels=bad, object=obj, scan_index=np.zeros(len(pos), np.int64),
                      photon_scale=s)


def conventional_geometry(N: int) -> ScanGeometry:
    """The conventional geometry of simulated data, made self-consistent for size N.

    Object pixel 10 nm, detector distance 1 m, photon energy 10 keV (conventional values,
    not measured); detector pixel ``lambda z / (N * object pixel)`` so that the far-field
    relation holds; object centre (0, 0) m.
    """
    px = CONVENTIONAL_GEOMETRY["object_pixel_m"]
    z = CONVENTIONAL_GEOMETRY["detector_distance_m"]
    e = CONVENTIONAL_GEOMETRY["photon_energy_eV"]
    dp = wavelength_m(e) * z / (N * px)
    return ScanGeometry(detector_distance_m=z, detector_pixel_m=(dp, dp), photon_energy_eV=e,
                        object_pixel_m=(px, px), object_center_m=(0.0, 0.0))


# ----------------------------------------------------------------------------------
# Writers: one per layout (test fixtures and documentation)
# ----------------------------------------------------------------------------------

def _savez(path: str | Path, arrays: dict) -> Path:
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as fh:          # exact name: np.savez would append ".npz"
        np.savez(fh, **arrays)
    return dest


def write_ptychopinn_npz(path: str | Path, scan: SpiralScan, *, layout: str = "nhw",
                         key: str = "diffraction", extra: dict | None = None) -> Path:
    """Upstream PtychoPINN NPZ: ``xcoords``, ``ycoords`` (+ ``_start``), patterns under
    ``key`` ('diffraction' or legacy 'diff3d') in ``layout`` 'nhw' (n, H, W), 'hwn'
    (H, W, n) or 'nhw1' (n, H, W, 1), ``probeGuess`` ((H, W) for one mode, else
    (modes, H, W)), ``objectGuess``, ``scan_index``, ``bad_pixels``; ``extra`` adds keys.
    """
    d = scan.counts
    if layout == "hwn":
        d = np.ascontiguousarray(np.moveaxis(d, 0, 2))
    elif layout == "nhw1":
        d = d[..., None]
    elif layout != "nhw":
        raise ValueError(f"write_ptychopinn_npz: layout {layout!r} (expected 'nhw', 'hwn' "
                         "or 'nhw1')")
    x, y = scan.positions_px[:, 0], scan.positions_px[:, 1]
    arrays = {
        "xcoords": x, "ycoords": y, "xcoords_start": x, "ycoords_start": y,
        key: d,
        "probeGuess": scan.probe[0] if scan.probe.shape[0] == 1 else scan.probe,
        "objectGuess": scan.object, "scan_index": scan.scan_index,
        "bad_pixels": scan.bad_pixels,
    }
    arrays.update(extra or {})
    return _savez(path, arrays)


def write_ptychodus(directory: str | Path, scan: SpiralScan,
                    geometry: ScanGeometry | None = None, *,
                    product_name: str = "product-in.h5") -> tuple[Path, Path]:
    """Ptychodus 1.7 pair: ``diffraction.h5`` + an HDF5 product (via ``write_product``).

    ``diffraction.h5``: ``patterns`` (n, H, W) counts with attrs
    ``detector_pixel_width_m`` / ``detector_pixel_height_m``, ``indexes`` arange(n),
    ``bad_pixels`` (H, W) bool. ``geometry`` defaults to :func:`conventional_geometry`.
    """
    import h5py

    g = geometry or conventional_geometry(scan.N)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    dpath = folder / "diffraction.h5"
    with h5py.File(dpath, "w") as f:
        ds = f.create_dataset("patterns", data=scan.counts)
        ds.attrs["detector_pixel_width_m"] = g.detector_pixel_m[1]
        ds.attrs["detector_pixel_height_m"] = g.detector_pixel_m[0]
        f.create_dataset("indexes", data=np.arange(scan.n, dtype=np.int64))
        f.create_dataset("bad_pixels", data=scan.bad_pixels)
    ppath = write_product(folder / product_name, scan.object, scan.probe, scan.positions_px,
                          object_pixel_m=g.object_pixel_m,
                          detector_distance_m=g.detector_distance_m,
                          photon_energy_eV=g.photon_energy_eV, name="spiral_scan",
                          comments="simulated by ptycho.datagen.spiral_scan",
                          object_center_m=g.object_center_m)
    return dpath, ppath


def write_ptychodus_npz_product(path: str | Path, scan: SpiralScan,
                                geometry: ScanGeometry | None = None) -> Path:
    """Ptychodus NPZ product: the HDF5 names as flat keys, attributes as prefixed keys
    (``probe_pixel_width_m``, ``object_pixel_width_m``, ``object_center_x_m``, ...)."""
    g = geometry or conventional_geometry(scan.N)
    x_m, y_m = pixels_to_metres(scan.positions_px, g.object_center_m, g.object_pixel_m,
                                scan.object.shape)
    return _savez(path, {
        "name": np.array("spiral_scan"), "comments": np.array("simulated"),
        "detector_object_distance_m": np.float64(g.detector_distance_m),
        "photon_energy_eV": np.float64(g.photon_energy_eV),
        "probe_position_indexes": np.arange(scan.n, dtype=np.int64),
        "probe_position_x_m": x_m, "probe_position_y_m": y_m,
        "probe": scan.probe[None], "probe_pixel_width_m": np.float64(g.object_pixel_m[1]),
        "probe_pixel_height_m": np.float64(g.object_pixel_m[0]),
        "object": scan.object[None],
        "object_pixel_width_m": np.float64(g.object_pixel_m[1]),
        "object_pixel_height_m": np.float64(g.object_pixel_m[0]),
        "object_center_x_m": np.float64(g.object_center_m[0]),
        "object_center_y_m": np.float64(g.object_center_m[1]),
    })


def write_cxi(path: str | Path, scan: SpiralScan, geometry: ScanGeometry | None = None, *,
              with_product: bool = True, legacy: bool = False) -> Path:
    """CXI 1.6 file as Ptychodus writes it.

    Detector data at ``/entry_1/instrument_1/detector_1/data`` (soft-linked from
    ``/entry_1/data_1/data`` unless ``legacy``), translations (n, 3) metres at
    ``/entry_1/sample_1/geometry_1/translation`` (``legacy``: ``/entry_1/data_1/
    translation``), distance, pixel sizes, mask (uint32, 1 = invalid), energy in joules,
    probe at ``/entry_1/image_1/data`` (``legacy``: ``.../source_1/illumination``). With
    ``with_product``: the object at ``/entry_1/image_2/data`` and Ptychodus's pixel size
    and centre under ``/entry_1/ptychodus``, which fix the metre -> pixel mapping exactly.
    """
    import h5py

    g = geometry or conventional_geometry(scan.N)
    x_m, y_m = pixels_to_metres(scan.positions_px, g.object_center_m, g.object_pixel_m,
                                scan.object.shape)
    trans = np.stack([x_m, y_m, np.zeros_like(x_m)], axis=1)
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(dest, "w") as f:
        f.create_dataset("cxi_version", data=160)
        e = f.create_group("entry_1")
        det = e.create_group("instrument_1/detector_1")
        det.create_dataset("data", data=scan.counts)
        det.create_dataset("distance", data=float(g.detector_distance_m))
        det.create_dataset("x_pixel_size", data=float(g.detector_pixel_m[1]))
        det.create_dataset("y_pixel_size", data=float(g.detector_pixel_m[0]))
        det.create_dataset("mask", data=scan.bad_pixels.astype(np.uint32))
        src = e.create_group("instrument_1/source_1")
        src.create_dataset("energy", data=float(g.photon_energy_eV) * ELECTRON_VOLT_J)
        if legacy:
            e.create_group("data_1").create_dataset("translation", data=trans)
            src.create_dataset("illumination", data=scan.probe)
        else:
            e.create_group("sample_1/geometry_1").create_dataset("translation", data=trans)
            e.create_group("data_1")["data"] = h5py.SoftLink(
                "/entry_1/instrument_1/detector_1/data")
            e.create_group("image_1").create_dataset("data", data=scan.probe)
        if with_product:
            e.create_group("image_2").create_dataset("data", data=scan.object[None])
            pt = e.create_group("ptychodus")
            pt.create_dataset("object_pixel_width_m", data=float(g.object_pixel_m[1]))
            pt.create_dataset("object_pixel_height_m", data=float(g.object_pixel_m[0]))
            pt.create_dataset("object_center_x_m", data=float(g.object_center_m[0]))
            pt.create_dataset("object_center_y_m", data=float(g.object_center_m[1]))
            pt.create_dataset("probe_position_indexes", data=np.arange(scan.n, dtype=np.int64))
    return dest

