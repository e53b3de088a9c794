"""The Ptychodus 1.7 product (HDF5 or NPZ): reader and writers.

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
``object_center_x_m``, ``object_center_y_m``. Positions map to object pixels by
:func:`ptycho.formats.geometry.metres_to_pixels`. Only OPR entry 0 of the probe and layer 0
of the object are kept. :func:`write_product` writes the HDF5 product atomically,
:func:`write_ptychodus_npz_product` the NPZ variant.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ptycho.formats.checks import fail, finite_scalar
from ptycho.formats.geometry import CONVENTIONAL_GEOMETRY, ScanGeometry, geometry_to_write, \
    pixels_to_metres
from ptycho.formats.hdf5 import h5py_module, is_hdf5
from ptycho.formats.ptychopinn_npz import read_npz_arrays, save_npz
from ptycho.formats.scan_with_truth import ScanWithTruth

__all__ = ["read_product", "write_product", "write_ptychodus_npz_product"]

_OBJECT_ATTRS = ("pixel_width_m", "pixel_height_m", "center_x_m", "center_y_m")
_CONVENTIONAL_TEXT = (("object_pixel_m", "object pixel {:g} m"),
                      ("detector_distance_m", "detector distance {:g} m"),
                      ("photon_energy_eV", "photon energy {:g} eV"))

def _text(value: Any) -> str:
    v = np.asarray(value)
    v = v.reshape(()).item() if v.size == 1 else value
    return v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)


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
    if is_hdf5(path):
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
    h5py = h5py_module()
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
        for a in _OBJECT_ATTRS:
            if a not in o_ds.attrs:
                raise fail(path, f"object@{a}", "is missing",
                           f"attribute '{a}' of dataset 'object' (needed to map metres to "
                           "object pixels)")
            attrs[a] = finite_scalar(path, f"object@{a}", o_ds.attrs[a])
        out["object"] = _object_layer0(path, "object", o_ds[()])
        p_ds = f.get("probe")
        out["probe"] = _probe_modes(path, "probe", p_ds[()] if isinstance(p_ds, h5py.Dataset)
                                    else None, notes)
        out.update(_product_root(path, f.attrs, "@"))
    return _finish_product(path, out, attrs, notes, "h5")


def _read_product_npz(path: str) -> dict[str, Any]:
    required = ("probe_position_indexes", "probe_position_x_m", "probe_position_y_m",
                "object", "object_pixel_width_m", "object_pixel_height_m",
                "object_center_x_m", "object_center_y_m")
    arrays, notes = read_npz_arrays(path, required=required)
    keys = {"x_m": "probe_position_x_m", "y_m": "probe_position_y_m"}
    out = _position_arrays(path, arrays.get, keys, notes)
    attrs = {}
    for a in _OBJECT_ATTRS:
        k = f"object_{a}"
        if k not in arrays:
            raise fail(path, k, "is missing", "a scalar (needed to map metres to object pixels)")
        attrs[a] = finite_scalar(path, k, arrays[k])
    out["object"] = _object_layer0(path, "object", arrays.get("object"))
    out["probe"] = _probe_modes(path, "probe", arrays.get("probe"), notes)
    out.update(_product_root(path, arrays, ""))
    return _finish_product(path, out, attrs, notes, "npz")


def _product_root(path: str, values, prefix: str) -> dict[str, Any]:
    """The product's root values (HDF5 root attributes, or the NPZ's flat keys): detector
    distance, photon energy (older files: ``probe_energy_eV``), name and comments.
    ``prefix`` marks where a value lives in error messages (``@`` for an attribute)."""
    key = "detector_object_distance_m"
    distance = finite_scalar(path, f"{prefix}{key}", values[key]) if key in values else None
    energy = next((finite_scalar(path, f"{prefix}{a}", values[a])
                   for a in ("photon_energy_eV", "probe_energy_eV") if a in values), None)
    return {"detector_distance_m": distance, "photon_energy_eV": energy,
            "name": _text(values["name"]) if "name" in values else "",
            "comments": _text(values["comments"]) if "comments" in values else ""}


def _finish_product(path, out, attrs, notes, fmt):
    sep = "@" if fmt == "h5" else "_"     # where the object's pixel size lives
    out["keys"] = {"positions": "probe_position_x_m", "probe": "probe", "object": "object",
                   "pixel_width": f"object{sep}pixel_width_m",
                   "pixel_height": f"object{sep}pixel_height_m"}
    for a, role in (("pixel_width_m", "pixel_width"), ("pixel_height_m", "pixel_height")):
        if not attrs[a] > 0:
            raise fail(path, out["keys"][role], f"is {attrs[a]!r}", "a pixel size > 0 metres")
    out["object_pixel_m"] = (attrs["pixel_height_m"], attrs["pixel_width_m"])
    out["object_center_m"] = (attrs["center_x_m"], attrs["center_y_m"])
    out["object_shape"] = tuple(int(s) for s in out["object"].shape)
    out["notes"] = notes
    out["format"] = fmt
    return out

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
            :func:`ptycho.formats.geometry.pixels_to_metres`, ``probe_position_indexes`` =
            arange(n).
        object_pixel_m: float or (y, x) in metres; ``detector_distance_m``,
            ``photon_energy_eV``: any left as None takes its value from
            :data:`ptycho.formats.geometry.CONVENTIONAL_GEOMETRY`, and ``comments`` then
            says these are conventional values, not measured.
        object_center_m: (x, y) of the object centre in metres.
    """
    h5py = h5py_module()
    dest = Path(path)
    obj, q, pos = _product_arrays(object, probe, positions_px)
    values, conventional = _conventional({"object_pixel_m": object_pixel_m,
                                          "detector_distance_m": detector_distance_m,
                                          "photon_energy_eV": photon_energy_eV})
    pix = _pixel_pair(values["object_pixel_m"])
    if conventional:
        note = ("Conventional values, not measured (the study is in pixel units): "
                + ", ".join(conventional) + ".")
        comments = (comments + " " + note).strip()
    x_m, y_m = pixels_to_metres(pos, object_center_m, pix, obj.shape)
    root = {"name": str(name), "comments": str(comments),
            "detector_object_distance_m": float(values["detector_distance_m"]),
            "photon_energy_eV": float(values["photon_energy_eV"])}
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            _fill_product(f, root, x_m, y_m, q, obj, pix, object_center_m)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _product_arrays(object, probe, positions_px):
    """``(object (H, W), probe (modes, H, W), positions (n, 2) float64)``, or refused."""
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
    return obj, q, pos


def _conventional(values: dict) -> tuple[dict, list[str]]:
    """``values`` with each None replaced by its conventional value, and what was replaced
    (for the comments)."""
    out, replaced = dict(values), []
    for key, text in _CONVENTIONAL_TEXT:
        if out[key] is None:
            out[key] = CONVENTIONAL_GEOMETRY[key]
            replaced.append(text.format(out[key]))
    return out, replaced


def _fill_product(f, root: dict, x_m, y_m, q, obj, pix, object_center_m) -> None:
    """Write the product's attributes and datasets into the open HDF5 file ``f``."""
    for key, value in root.items():
        f.attrs[key] = value
    f.attrs["probe_photon_count"] = 0.0
    f.attrs["exposure_time_s"] = 0.0
    f.create_dataset("probe_position_indexes", data=np.arange(len(x_m), dtype=np.int64))
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


def write_ptychodus_npz_product(path: str | Path, scan: ScanWithTruth,
                                geometry: ScanGeometry | None = None, *,
                                name: str = "spiral_scan", comments: str = "simulated"
                                ) -> Path:
    """Ptychodus NPZ product of ``scan``: the HDF5 names as flat keys, attributes as
    prefixed keys (``probe_pixel_width_m``, ``object_pixel_width_m``,
    ``object_center_x_m``, ...). ``geometry`` defaults to
    :func:`ptycho.formats.geometry.conventional_geometry`."""
    g = geometry_to_write(geometry, scan.N)
    x_m, y_m = pixels_to_metres(scan.positions_px, g.object_center_m, g.object_pixel_m,
                                scan.object.shape)
    return save_npz(path, {
        "name": np.array(name), "comments": np.array(comments),
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
