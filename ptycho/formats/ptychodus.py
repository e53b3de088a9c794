"""Ptychodus 1.7 files: ``diffraction.h5`` + a product (HDF5 or NPZ); a product writer.

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

Product file (HDF5; HDF5 attributes are written ``dataset@attribute`` in messages):

=============================== ================= =========================================
name                            shape             meaning
=============================== ================= =========================================
root attrs ``name``,            scalars           ``photon_energy_eV`` (older files:
``comments``,                                     ``probe_energy_eV``)
``detector_object_distance_m``,
``photon_energy_eV``
``probe_position_indexes``      (n,)              integer index of each position
``probe_position_x_m``, ``_y_m`` (n,)             probe positions in metres
``probe``                       (opr, modes, H, W) complex; 2-D and 3-D accepted; attrs
                                                  ``pixel_width_m``, ``pixel_height_m``
``object``                      (layers, H, W)    complex; 2-D accepted; REQUIRED attrs
                                                  ``pixel_width_m``, ``pixel_height_m``,
                                                  ``center_x_m``, ``center_y_m``
=============================== ================= =========================================

The NPZ product has the same names as flat keys; the dataset attributes become prefixed
keys: ``probe_pixel_width_m``, ``object_pixel_width_m``, ``object_pixel_height_m``,
``object_center_x_m``, ``object_center_y_m``.

Metres to object pixels, exactly as Ptychodus maps probe positions onto its object::

    x_px = (x_m - center_x_m) / pixel_width_m + (object_width_px - 1) / 2
    y_px = (y_m - center_y_m) / pixel_height_m + (object_height_px - 1) / 2

Pairing: pattern ``i`` takes the position whose index equals ``indexes[i]``; patterns
without a position are dropped (with a note); duplicate position indexes are refused.
Only OPR entry 0 of the probe and layer 0 of the object are kept.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ptycho.formats.ptychopinn_npz import read_npz_arrays
from ptycho.formats.raw_scan import RawScan, ScanGeometry, fail, make_raw_scan

__all__ = [
    "CONVENTIONAL_GEOMETRY",
    "PRODUCT_CANDIDATES",
    "metres_to_pixels",
    "pixels_to_metres",
    "read_product",
    "read_ptychodus",
    "write_product",
]

#: Files looked for beside ``diffraction.h5``, in this order.
PRODUCT_CANDIDATES = ("product-in.h5", "product-out.h5", "product-in.npz", "product.h5")

#: Geometry written for studies without a physical one (simulated, in pixel units). These
#: are conventional values, not measurements: 10 nm object pixels, 1 m, 10 keV.
CONVENTIONAL_GEOMETRY = {
    "object_pixel_m": 1e-8,
    "detector_distance_m": 1.0,
    "photon_energy_eV": 10000.0,
}

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def metres_to_pixels(x_m, y_m, center_m, pixel_m, object_shape):
    """Ptychodus's mapping: positions (m) -> object pixels (x, y), float64 (n, 2).

    ``center_m`` (x, y), ``pixel_m`` (y, x) = (height, width), ``object_shape`` (H, W).
    """
    H, W = object_shape
    x = (np.asarray(x_m, np.float64) - center_m[0]) / pixel_m[1] + (W - 1) / 2.0
    y = (np.asarray(y_m, np.float64) - center_m[1]) / pixel_m[0] + (H - 1) / 2.0
    return np.stack([x, y], axis=1)


def pixels_to_metres(positions_px, center_m, pixel_m, object_shape):
    """Inverse of :func:`metres_to_pixels`: returns (x_m, y_m) float64 arrays."""
    H, W = object_shape
    p = np.asarray(positions_px, np.float64)
    x_m = (p[:, 0] - (W - 1) / 2.0) * pixel_m[1] + center_m[0]
    y_m = (p[:, 1] - (H - 1) / 2.0) * pixel_m[0] + center_m[1]
    return x_m, y_m


# ----------------------------------------------------------------------------------
# Product reading
# ----------------------------------------------------------------------------------

def _h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is installed with the project
        raise ImportError("reading HDF5 files needs h5py (pip install h5py)") from exc
    return h5py


def _scalar(path: str, key: str, value: Any) -> float:
    try:
        v = float(np.asarray(value).reshape(()))
    except (TypeError, ValueError):
        raise fail(path, key, f"is {value!r}", "a real scalar") from None
    if not np.isfinite(v):
        raise fail(path, key, f"is {v!r}", "a finite real scalar")
    return v


def _text(value: Any) -> str:
    v = np.asarray(value)
    v = v.reshape(()).item() if v.size == 1 else value
    return v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)


def _is_hdf5(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(8) == _HDF5_MAGIC


def read_product(path: str | Path) -> dict[str, Any]:
    """Read a Ptychodus product (HDF5 or NPZ, detected by content).

    Returns a dict: ``indexes`` (m,) int64, ``x_m``, ``y_m`` (m,) float64, ``probe``
    (modes, H, W) complex or None, ``object`` (H, W) complex, ``object_shape`` (H, W),
    ``object_pixel_m`` (y, x), ``object_center_m`` (x, y), ``detector_distance_m``,
    ``photon_energy_eV`` (None when absent), ``name``, ``comments``, ``notes``, ``keys``
    (role -> the file's key, for messages), ``format`` ('h5' or 'npz').
    """
    path = str(path)
    if not os.path.isfile(path):
        raise fail(path, "probe_position_x_m", "cannot be read: the product file does not "
                   "exist", "a Ptychodus product (.h5 or .npz)")
    if _is_hdf5(path):
        return _read_product_h5(path)
    with open(path, "rb") as fh:
        if fh.read(2) == b"PK":
            return _read_product_npz(path)
    raise fail(path, "probe_position_x_m", "cannot be read: neither HDF5 nor NPZ content",
               "a Ptychodus product (.h5 or .npz)")


def _position_arrays(path, get, keys, notes):
    out = {}
    for role, key in (("indexes", "probe_position_indexes"), ("x_m", "probe_position_x_m"),
                      ("y_m", "probe_position_y_m")):
        a = get(key)
        if a is None:
            raise fail(path, key, "is missing", "a (n,) array of the product's probe positions")
        a = np.asarray(a)
        if a.ndim != 1:
            raise fail(path, key, f"has shape {a.shape}", "(n,)")
        out[role] = a
    m = out["indexes"].shape[0]
    for role in ("x_m", "y_m"):
        if out[role].shape[0] != m:
            raise fail(path, keys[role], f"has {out[role].shape[0]} positions",
                       f"{m}, as in 'probe_position_indexes'")
        if out[role].dtype.kind not in "fiu":
            raise fail(path, keys[role], f"has dtype {out[role].dtype}", "a real float dtype")
        out[role] = out[role].astype(np.float64)
        if not np.isfinite(out[role]).all():
            raise fail(path, keys[role], "contains non-finite values", "finite values only")
    if out["indexes"].dtype.kind not in "iu":
        raise fail(path, "probe_position_indexes", f"has dtype {out['indexes'].dtype}",
                   "an integer dtype")
    out["indexes"] = out["indexes"].astype(np.int64)
    return out


def _probe_modes(path: str, key: str, probe: np.ndarray | None, notes: list[str]):
    if probe is None:
        return None
    q = np.asarray(probe)
    if q.ndim == 4:
        if q.shape[0] > 1:
            notes.append(f"'{key}' has {q.shape[0]} OPR entries; kept entry 0")
        q = q[0]
    if q.ndim == 2:
        q = q[None]
    if q.ndim != 3:
        raise fail(path, key, f"has shape {np.shape(probe)}",
                   "(opr, modes, H, W), (modes, H, W) or (H, W)")
    return q


def _object_layer0(path: str, key: str, obj: np.ndarray | None):
    if obj is None:
        raise fail(path, key, "is missing", "the product's complex object (layers, H, W) "
                   "(its shape and pixel size map metres to pixels)")
    o = np.asarray(obj)
    if o.ndim == 3:
        o = o[0] if o.shape[0] else o
    if o.ndim != 2 or 0 in o.shape:
        raise fail(path, key, f"has shape {np.shape(obj)}", "(layers, H, W) or (H, W)")
    return o


def _read_product_h5(path: str) -> dict[str, Any]:
    h5py = _h5py()
    notes: list[str] = []
    with h5py.File(path, "r") as f:
        def get(key):
            obj = f.get(key)
            return obj[()] if isinstance(obj, h5py.Dataset) else None

        keys = {"x_m": "probe_position_x_m", "y_m": "probe_position_y_m"}
        out = _position_arrays(path, get, keys, notes)
        o_ds = f.get("object")
        if not isinstance(o_ds, h5py.Dataset):
            raise fail(path, "object", "is missing", "the product's complex object dataset "
                       "with attrs pixel_width_m, pixel_height_m, center_x_m, center_y_m")
        attrs = {}
        for a in ("pixel_width_m", "pixel_height_m", "center_x_m", "center_y_m"):
            if a not in o_ds.attrs:
                raise fail(path, f"object@{a}", "is missing",
                           f"attribute '{a}' of dataset 'object' (needed to map metres to "
                           "object pixels)")
            attrs[a] = _scalar(path, f"object@{a}", o_ds.attrs[a])
        out["object"] = _object_layer0(path, "object", o_ds[()])
        p_ds = f.get("probe")
        out["probe"] = _probe_modes(path, "probe", p_ds[()] if isinstance(p_ds, h5py.Dataset)
                                    else None, notes)
        out.update(_product_root(path, f.attrs, "@"))
    out["keys"] = {"positions": "probe_position_x_m", "probe": "probe", "object": "object",
                   "pixel_width": "object@pixel_width_m",
                   "pixel_height": "object@pixel_height_m"}
    return _finish_product(path, out, attrs, notes, "h5")


def _read_product_npz(path: str) -> dict[str, Any]:
    required = ("probe_position_indexes", "probe_position_x_m", "probe_position_y_m",
                "object", "object_pixel_width_m", "object_pixel_height_m",
                "object_center_x_m", "object_center_y_m")
    arrays, notes = read_npz_arrays(path, required=required)
    keys = {"x_m": "probe_position_x_m", "y_m": "probe_position_y_m"}
    out = _position_arrays(path, arrays.get, keys, notes)
    attrs = {}
    for a in ("pixel_width_m", "pixel_height_m", "center_x_m", "center_y_m"):
        k = f"object_{a}"
        if k not in arrays:
            raise fail(path, k, "is missing", "a scalar (needed to map metres to object pixels)")
        attrs[a] = _scalar(path, k, arrays[k])
    out["object"] = _object_layer0(path, "object", arrays.get("object"))
    out["probe"] = _probe_modes(path, "probe", arrays.get("probe"), notes)
    out.update(_product_root(path, arrays, ""))
    out["keys"] = {"positions": "probe_position_x_m", "probe": "probe", "object": "object",
                   "pixel_width": "object_pixel_width_m",
                   "pixel_height": "object_pixel_height_m"}
    return _finish_product(path, out, attrs, notes, "npz")


def _product_root(path: str, values, prefix: str) -> dict[str, Any]:
    """The product's root values (HDF5 root attributes, or the NPZ's flat keys): detector
    distance, photon energy (older files: ``probe_energy_eV``), name and comments.
    ``prefix`` marks where a value lives in error messages (``@`` for an attribute)."""
    key = "detector_object_distance_m"
    distance = _scalar(path, f"{prefix}{key}", values[key]) if key in values else None
    energy = next((_scalar(path, f"{prefix}{a}", values[a])
                   for a in ("photon_energy_eV", "probe_energy_eV") if a in values), None)
    return {"detector_distance_m": distance, "photon_energy_eV": energy,
            "name": _text(values["name"]) if "name" in values else "",
            "comments": _text(values["comments"]) if "comments" in values else ""}


def _finish_product(path, out, attrs, notes, fmt):
    for a, role in (("pixel_width_m", "pixel_width"), ("pixel_height_m", "pixel_height")):
        if not attrs[a] > 0:
            raise fail(path, out["keys"][role], f"is {attrs[a]!r}", "a pixel size > 0 metres")
    out["object_pixel_m"] = (attrs["pixel_height_m"], attrs["pixel_width_m"])
    out["object_center_m"] = (attrs["center_x_m"], attrs["center_y_m"])
    out["object_shape"] = tuple(int(s) for s in out["object"].shape)
    out["notes"] = notes
    out["format"] = fmt
    return out


# ----------------------------------------------------------------------------------
# Diffraction + product -> RawScan
# ----------------------------------------------------------------------------------

def find_product(diffraction_path: str | Path) -> Path | None:
    """The first of :data:`PRODUCT_CANDIDATES` beside ``diffraction_path``, or None."""
    folder = Path(diffraction_path).resolve().parent
    for name in PRODUCT_CANDIDATES:
        p = folder / name
        if p.is_file():
            return p
    return None


def read_ptychodus(path: str | Path, product: str | Path | None = None, *,
                   unit: str = "auto") -> RawScan:
    """Read ``diffraction.h5`` with its product (given, or found beside it)."""
    h5py = _h5py()
    path = str(path)
    notes: list[str] = []
    with h5py.File(path, "r") as f:
        ds = f.get("patterns")
        if not isinstance(ds, h5py.Dataset):
            raise fail(path, "patterns", "is missing", "a (n, H, W) dataset of counts")
        patterns = ds[()]
        det_px = None
        if "detector_pixel_width_m" in ds.attrs and "detector_pixel_height_m" in ds.attrs:
            det_px = (_scalar(path, "patterns@detector_pixel_height_m",
                              ds.attrs["detector_pixel_height_m"]),
                      _scalar(path, "patterns@detector_pixel_width_m",
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

    if product is None:
        found = find_product(path)
        if found is None:
            raise fail(path, "probe_position_x_m", "is missing: no product file beside "
                       "the diffraction file", "one of " + ", ".join(PRODUCT_CANDIDATES)
                       + " in the same folder, or read_scan(..., product=PATH)")
        product = found
    prod = read_product(product)
    ppath = str(product)
    notes.extend(prod["notes"])
    notes.append(f"positions from product '{ppath}'")

    # -- pair patterns with positions by index ------------------------------------------
    pidx = prod["indexes"]
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
        patterns = patterns[keep]
    rows = rows[keep]
    unused = len(pidx) - len(np.unique(rows))
    if unused:
        notes.append(f"{unused} product positions have no pattern; unused")

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


# ----------------------------------------------------------------------------------
# Writer
# ----------------------------------------------------------------------------------

def _pixel_pair(value) -> tuple[float, float]:
    v = np.asarray(value, np.float64).reshape(-1)
    if v.size == 1:
        return float(v[0]), float(v[0])
    if v.size == 2:
        return float(v[0]), float(v[1])
    raise ValueError(f"write_product: object_pixel_m = {value!r} is invalid "
                     "(expected a float or a (y, x) pair in metres)")


def write_product(path: str | Path, object: np.ndarray, probe: np.ndarray,
                  positions_px: np.ndarray, object_pixel_m=None,
                  detector_distance_m: float | None = None,
                  photon_energy_eV: float | None = None, *,
                  name: str = "", comments: str = "",
                  object_center_m: tuple[float, float] = (0.0, 0.0)) -> Path:
    """Write a Ptychodus 1.7 HDF5 product atomically; return its path.

    Args:
        object: complex (H, W) (stored (1, H, W)).
        probe: complex (modes, H, W) or (H, W) (stored (1, modes, H, W)); its pixel size is
            the object's.
        positions_px: (n, 2) probe centres (x, y) in object pixels; stored in metres via
            the inverse of :func:`metres_to_pixels`, ``probe_position_indexes`` = arange(n).
        object_pixel_m: float or (y, x) in metres; ``detector_distance_m``,
            ``photon_energy_eV``: any left as None takes its value from
            :data:`CONVENTIONAL_GEOMETRY`, and ``comments`` then says these are
            conventional values, not measured.
        object_center_m: (x, y) of the object centre in metres.
    """
    h5py = _h5py()
    dest = Path(path)
    obj = np.asarray(object)
    if obj.ndim == 3 and obj.shape[0] == 1:
        obj = obj[0]
    if obj.ndim != 2:
        raise ValueError(f"write_product: object has shape {np.shape(object)} "
                         "(expected (H, W))")
    q = np.asarray(probe)
    if q.ndim == 2:
        q = q[None]
    if q.ndim != 3:
        raise ValueError(f"write_product: probe has shape {np.shape(probe)} "
                         "(expected (modes, H, W) or (H, W))")
    pos = np.asarray(positions_px, np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2 or not np.isfinite(pos).all():
        raise ValueError(f"write_product: positions_px has shape {pos.shape} or non-finite "
                         "values (expected finite (n, 2) (x, y) object pixels)")
    conventional = []
    if object_pixel_m is None:
        object_pixel_m = CONVENTIONAL_GEOMETRY["object_pixel_m"]
        conventional.append(f"object pixel {object_pixel_m:g} m")
    if detector_distance_m is None:
        detector_distance_m = CONVENTIONAL_GEOMETRY["detector_distance_m"]
        conventional.append(f"detector distance {detector_distance_m:g} m")
    if photon_energy_eV is None:
        photon_energy_eV = CONVENTIONAL_GEOMETRY["photon_energy_eV"]
        conventional.append(f"photon energy {photon_energy_eV:g} eV")
    pix = _pixel_pair(object_pixel_m)
    if conventional:
        note = ("Conventional values, not measured (the study is in pixel units): "
                + ", ".join(conventional) + ".")
        comments = (comments + " " + note).strip()
    x_m, y_m = pixels_to_metres(pos, object_center_m, pix, obj.shape)

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["name"] = str(name)
            f.attrs["comments"] = str(comments)
            f.attrs["detector_object_distance_m"] = float(detector_distance_m)
            f.attrs["photon_energy_eV"] = float(photon_energy_eV)
            f.attrs["probe_photon_count"] = 0.0
            f.attrs["exposure_time_s"] = 0.0
            f.create_dataset("probe_position_indexes", data=np.arange(len(pos), dtype=np.int64))
            f.create_dataset("probe_position_x_m", data=x_m)
            f.create_dataset("probe_position_y_m", data=y_m)
            pd = f.create_dataset("probe", data=q.astype(np.complex64)[None])
            pd.attrs["pixel_width_m"] = pix[1]
            pd.attrs["pixel_height_m"] = pix[0]
            od = f.create_dataset("object", data=obj.astype(np.complex64)[None])
            od.attrs["pixel_width_m"] = pix[1]
            od.attrs["pixel_height_m"] = pix[0]
            od.attrs["center_x_m"] = float(object_center_m[0])
            od.attrs["center_y_m"] = float(object_center_m[1])
            f.create_dataset("object_layer_spacing_m", data=np.zeros(0, np.float64))
            f.create_dataset("loss_epochs", data=np.zeros(0, np.int64))
            f.create_dataset("loss_values", data=np.zeros(0, np.float64))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest
