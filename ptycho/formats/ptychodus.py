"""Ptychodus 1.7 scans: ``diffraction.h5`` with its product, read and written.

Diffraction file (HDF5):

======================== ============ ===================================================
name                     shape        meaning
======================== ============ ===================================================
``patterns``             (n, H, W)    counts; attrs ``detector_pixel_width_m``,
                                      ``detector_pixel_height_m``
``indexes``              (n,)         integer index of each pattern, paired with the
                                      product's ``probe_position_indexes``
``bad_pixels``           (H, W)       bool, True = not measured (optional here)
``probe_photon_counts``  (n,)         optional, not used
======================== ============ ===================================================

The product (HDF5 or NPZ; :mod:`ptycho.formats.ptychodus_product`) is given, or found
beside the diffraction file (:data:`PRODUCT_CANDIDATES`, first found). Pairing: pattern
``i`` takes the position whose index equals ``indexes[i]``; patterns without a position are
dropped (with a note); duplicate position indexes are refused. Positions map from metres to
object pixels by :func:`ptycho.formats.geometry.metres_to_pixels`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ptycho.formats.checks import fail, finite_scalar
from ptycho.formats.geometry import ScanGeometry, geometry_to_write, metres_to_pixels
from ptycho.formats.hdf5 import h5py_module
from ptycho.formats.ptychodus_product import read_product, write_product
from ptycho.formats.raw_scan import RawScan
from ptycho.formats.scan_with_truth import ScanWithTruth
from ptycho.formats.validation import make_raw_scan

__all__ = ["PRODUCT_CANDIDATES", "find_product", "read_ptychodus", "object_window",
           "scan_centred_window", "write_ptychodus"]

#: Files looked for beside ``diffraction.h5``, in this order.
PRODUCT_CANDIDATES = ("product-in.h5", "product-out.h5", "product-in.npz", "product.h5")


def find_product(diffraction_path: str | Path) -> Path | None:
    """The first of :data:`PRODUCT_CANDIDATES` beside ``diffraction_path``, or None."""
    folder = Path(diffraction_path).resolve().parent
    for name in PRODUCT_CANDIDATES:
        p = folder / name
        if p.is_file():
            return p
    return None


def read_ptychodus(path: str | os.PathLike, product: str | os.PathLike | None = None, *,
                   unit: str = "auto") -> RawScan:
    """Read ``diffraction.h5`` with its product (given, or found beside it)."""
    path = str(path)
    notes: list[str] = []
    patterns, det_px, indexes, bad = _read_diffraction(path)
    ppath = _product_path(path, product)
    prod = read_product(ppath)
    notes.extend(prod["notes"])
    notes.append(f"positions from product '{ppath}'")
    rows, keep = _pair(path, ppath, indexes, prod["indexes"], notes)
    if not keep.all():
        patterns = patterns[keep]
    pos = metres_to_pixels(prod["x_m"][rows], prod["y_m"][rows], prod["object_center_m"],
                           prod["object_pixel_m"], prod["object_shape"])
    geometry = ScanGeometry(detector_distance_m=prod["detector_distance_m"],
                            detector_pixel_m=det_px,
                            photon_energy_eV=prod["photon_energy_eV"],
                            object_pixel_m=prod["object_pixel_m"],
                            object_center_m=prod["object_center_m"])
    fmt = "ptychodus_h5" if prod["format"] == "h5" else "ptychodus_npz_product"
    return make_raw_scan(
        path, fmt, patterns, pos, unit=unit,
        keys={"patterns": "patterns", "positions": "probe_position_x_m", "probe": "probe",
              "bad_pixels": "bad_pixels", "object": "object"},
        probe=prod["probe"], bad_pixels=bad, object_guess=prod["object"],
        geometry=geometry, notes=notes)


def _read_diffraction(path: str):
    """``(patterns (n, H, W), detector pixel (y, x) or None, indexes (n,), bad pixels or
    None)`` of the diffraction file, or a one-line refusal."""
    h5py = h5py_module()
    with h5py.File(path, "r") as f:
        ds = f.get("patterns")
        if not isinstance(ds, h5py.Dataset):
            raise fail(path, "patterns", "is missing", "a (n, H, W) dataset of counts")
        patterns = ds[()]
        det_px = None
        if "detector_pixel_width_m" in ds.attrs and "detector_pixel_height_m" in ds.attrs:
            det_px = (finite_scalar(path, "patterns@detector_pixel_height_m",
                                    ds.attrs["detector_pixel_height_m"]),
                      finite_scalar(path, "patterns@detector_pixel_width_m",
                                    ds.attrs["detector_pixel_width_m"]))
        ids = f.get("indexes")
        if not isinstance(ids, h5py.Dataset):
            raise fail(path, "indexes", "is missing",
                       "a (n,) integer dataset pairing patterns with product positions")
        indexes = np.asarray(ids[()])
        bp = f.get("bad_pixels")
        bad = bp[()] if isinstance(bp, h5py.Dataset) else None
    if patterns.ndim != 3:
        raise fail(path, "patterns", f"has shape {patterns.shape}", "(n, H, W)")
    if indexes.shape != (patterns.shape[0],):
        raise fail(path, "indexes", f"has shape {indexes.shape}",
                   f"({patterns.shape[0]},), one per pattern of 'patterns'")
    if indexes.dtype.kind not in "iu":
        raise fail(path, "indexes", f"has dtype {indexes.dtype}", "an integer dtype")
    return patterns, det_px, indexes, bad


def _product_path(path: str, product: str | os.PathLike | None) -> str:
    """``product`` itself, else the product found beside the diffraction file."""
    if product is not None:
        return str(product)
    found = find_product(path)
    if found is None:
        raise fail(path, "probe_position_x_m", "is missing: no product file beside "
                   "the diffraction file", "one of " + ", ".join(PRODUCT_CANDIDATES)
                   + " in the same folder, or read_scan(..., product=PATH)")
    return str(found)


def _pair(path: str, ppath: str, indexes: np.ndarray, pidx: np.ndarray, notes: list[str]
          ) -> tuple[np.ndarray, np.ndarray]:
    """Pair patterns with positions by index: ``(product row of each kept pattern, kept
    mask over the patterns)``; notes what was dropped or unused."""
    _, counts = np.unique(pidx, return_counts=True)
    if (counts > 1).any():
        raise fail(ppath, "probe_position_indexes",
                   f"has {int((counts > 1).sum())} duplicated indexes", "unique indexes")
    lookup = {int(i): j for j, i in enumerate(pidx)}
    rows = np.array([lookup.get(int(i), -1) for i in indexes], np.int64)
    keep = rows >= 0
    if not keep.any():
        raise fail(path, "indexes", "shares no index with the product's "
                   "'probe_position_indexes'", "pattern indexes that have positions")
    if not keep.all():
        notes.append(f"dropped {int((~keep).sum())} patterns whose index has no position "
                     "in the product")
    rows = rows[keep]
    unused = len(pidx) - len(np.unique(rows))
    if unused:
        notes.append(f"{unused} product positions have no pattern; unused")
    return rows, keep


def write_ptychodus(directory: str | Path, scan: ScanWithTruth,
                    geometry: ScanGeometry | None = None, *,
                    product_name: str = "product-in.h5", name: str = "spiral_scan",
                    comments: str = "simulated by ptycho.datagen.spiral_scan",
                    object_frame: str = "given") -> tuple[Path, Path]:
    """Ptychodus 1.7 pair: ``diffraction.h5`` + an HDF5 product (via ``write_product``,
    with ``name`` and ``comments``).

    ``object_frame``: ``"given"`` writes ``scan.object`` as it is; ``"scan"`` writes the
    window of it that Ptychodus itself would build for the scan
    (:func:`scan_centred_window`: centred on the scan to half a pixel, the probe's width
    beyond the outermost positions), which is the frame a reconstruction returned to
    Ptychodus is placed in.

    ``diffraction.h5``: ``patterns`` (n, H, W) counts with attrs
    ``detector_pixel_width_m`` / ``detector_pixel_height_m``, ``indexes`` arange(n),
    ``bad_pixels`` (H, W) bool. ``geometry`` defaults to
    :func:`ptycho.formats.geometry.conventional_geometry`.
    """
    h5py = h5py_module()
    g = geometry_to_write(geometry, scan.N)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    dpath = folder / "diffraction.h5"
    with h5py.File(dpath, "w") as f:
        ds = f.create_dataset("patterns", data=scan.counts)
        ds.attrs["detector_pixel_width_m"] = g.detector_pixel_m[1]
        ds.attrs["detector_pixel_height_m"] = g.detector_pixel_m[0]
        f.create_dataset("indexes", data=np.arange(scan.n, dtype=np.int64))
        f.create_dataset("bad_pixels", data=scan.bad_pixels)
    obj, pos = scan.object, scan.positions_px
    if object_frame == "scan":
        (r0, c0), (H, W) = scan_centred_window(pos, scan.N)
        obj, pos = object_window(obj, r0, c0, H, W), pos - np.array([c0, r0], np.float64)
    elif object_frame != "given":
        raise ValueError(f"object_frame={object_frame!r} is not allowed (choose one of: "
                         "'given', 'scan')")
    ppath = write_product(folder / product_name, obj, scan.probe, pos,
                          object_pixel_m=g.object_pixel_m,
                          detector_distance_m=g.detector_distance_m,
                          photon_energy_eV=g.photon_energy_eV, name=name,
                          comments=comments, object_center_m=g.object_center_m)
    return dpath, ppath


def scan_centred_window(positions_px, N: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((row0, col0), (H, W))``: the object window of a scan as Ptychodus builds one,
    with whole-pixel corners: per axis the probe's width ``N`` beyond the outermost
    positions, and ``x_min + x_max - 2 col0`` within half a pixel of ``W - 1`` (a scan
    centred on the window, so Ptychodus' position-to-pixel map gives back the positions)."""
    pos = np.asarray(positions_px, dtype=np.float64)
    out = []
    for ax in (1, 0):                                   # rows (y), then columns (x)
        lo, hi = float(pos[:, ax].min()), float(pos[:, ax].max())
        candidates = []
        for size in (int(np.ceil(hi - lo)) + N + 1, int(np.ceil(hi - lo)) + N + 2):
            start = int(np.floor((lo + hi - (size - 1)) / 2 + 0.5))
            candidates.append((abs(lo + hi - 2 * start - (size - 1)), start, size))
        _, start, size = min(candidates, key=lambda c: c[0])  # the first on a tie
        out.append((start, size))
    (r0, H), (c0, W) = out
    return (r0, c0), (H, W)


def object_window(obj: np.ndarray, r0: int, c0: int, H: int, W: int) -> np.ndarray:
    """``obj[r0:r0+H, c0:c0+W]``, with 1 (free space) outside ``obj``."""
    out = np.ones((H, W), np.complex64)
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + H, obj.shape[0]), min(c0 + W, obj.shape[1])
    if re > rs and ce > cs:
        out[rs - r0:re - r0, cs - c0:ce - c0] = obj[rs:re, cs:ce]
    return out
