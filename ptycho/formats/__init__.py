"""Readers for the field's ptychography files, all returning one :class:`RawScan`.

:func:`read_scan` detects the format from the file's CONTENT, never from its name:

1. the zip signature ``PK`` means an NPZ archive; its member names decide:

   - ``xcoords`` + ``ycoords`` + ``diffraction`` / ``diff3d`` -> upstream PtychoPINN NPZ
     (:mod:`ptycho.formats.ptychopinn_npz`), format ``'ptychopinn_npz'``;
   - ``diffraction`` + ``probeGuess`` (+ ``coords_offsets``) -> this project's dataset NPZ
     (:mod:`ptycho.io`), format ``'project_npz'`` (gridsize 1 files only);
   - ``probe_position_x_m`` without patterns -> a Ptychodus NPZ product alone: refused
     (give the diffraction file, with ``product=``);

2. the HDF5 signature ``\\x89HDF\\r\\n\\x1a\\n`` means HDF5; its paths decide:

   - ``/entry_1`` -> CXI (:mod:`ptycho.formats.cxi`), format ``'cxi'`` (a finished live
     scan file of the ``cxi`` layout among them);
   - patterns and positions in the file itself, as ``ptycho-live-sim`` writes them
     (``diffraction`` + ``xcoords`` / ``ycoords``, or ``patterns`` + ``probe_position_x_m``
     / ``_y_m``) -> a live scan file (:mod:`ptycho.formats.live_file`), format ``'live_h5'``;
   - ``patterns`` (+ ``indexes``) -> Ptychodus ``diffraction.h5`` with its product
     (:mod:`ptycho.formats.ptychodus`, :mod:`ptycho.formats.ptychodus_product`), format
     ``'ptychodus_h5'`` (or ``'ptychodus_npz_product'`` when the product is the NPZ
     variant);
   - ``probe_position_x_m`` without patterns -> a product alone: refused.

Anything else is refused with one line naming the file. ``unit`` ("auto", "counts",
"amplitude") follows the rule in :mod:`ptycho.formats.units`. Convert with
``read_scan(path).to_dataset(gridsize=1)``.
"""
from __future__ import annotations

import os

import numpy as np

from ptycho.formats.checks import fail
from ptycho.formats.cxi import read_cxi
from ptycho.formats.geometry import CONVENTIONAL_GEOMETRY, ScanGeometry
from ptycho.formats.hdf5 import HDF5_MAGIC
from ptycho.formats.live_file import live_layout_of, read_live_file
from ptycho.formats.ptychodus import read_ptychodus
from ptycho.formats.ptychodus_product import write_product
from ptycho.formats.ptychopinn_npz import is_ptychopinn_npz, npz_keys, read_ptychopinn_npz
from ptycho.formats.raw_scan import MAX_SPAN_PX, RawScan
from ptycho.formats.units import UNITS, decide_unit
from ptycho.formats.validation import make_raw_scan
from ptycho.io import load_dataset

__all__ = [
    "CONVENTIONAL_GEOMETRY",
    "MAX_SPAN_PX",
    "UNITS",
    "RawScan",
    "ScanGeometry",
    "check_cxi_sign",
    "detect_format",
    "read_scan",
    "write_product",
]

PRODUCT_KEYS = ("probe_position_x_m", "probe_position_y_m", "probe_position_indexes")


def _cannot(path: str, reason: str) -> ValueError:
    return ValueError(f"dataset '{path}': cannot read: {reason} (expected an NPZ (PtychoPINN "
                      "or this project's) or an HDF5 file (Ptychodus diffraction.h5 or CXI))")


def _magic(path: str) -> bytes:
    if not os.path.exists(path):
        raise _cannot(path, "file does not exist")
    if not os.path.isfile(path):
        raise _cannot(path, "not a regular file")
    with open(path, "rb") as fh:
        return fh.read(8)


def detect_format(path: str | os.PathLike) -> str:
    """The format name :func:`read_scan` would use (from content), or a one-line refusal."""
    path = str(path)
    magic = _magic(path)
    if magic.startswith(b"PK"):
        keys = npz_keys(path)
        if is_ptychopinn_npz(keys):
            return "ptychopinn_npz"
        if "diffraction" in keys and "probeGuess" in keys:
            return "project_npz"
        if any(k in keys for k in PRODUCT_KEYS):
            raise fail(path, "patterns", "is missing: this is a Ptychodus product without "
                       "diffraction patterns", "the diffraction file, read as "
                       "read_scan(diffraction.h5, product=THIS_FILE)")
        raise fail(path, "xcoords", f"is missing (NPZ keys {sorted(keys)[:12]})",
                   "a PtychoPINN NPZ (xcoords, ycoords, diffraction or diff3d) or this "
                   "project's dataset NPZ (diffraction, probeGuess)")
    if magic == HDF5_MAGIC:
        import h5py
        with h5py.File(path, "r") as f:
            if "entry_1" in f:
                return "cxi"
            if live_layout_of(f) is not None:
                return "live_h5"
            if "patterns" in f:
                return "ptychodus_h5"
            if any(k in f for k in PRODUCT_KEYS):
                raise fail(path, "patterns", "is missing: this is a Ptychodus product without "
                           "diffraction patterns", "the diffraction file, read as "
                           "read_scan(diffraction.h5, product=THIS_FILE)")
            names = sorted(f.keys())[:12]
        raise fail(path, "/entry_1/data_1/data", f"is missing (HDF5 root holds {names})",
                   "a CXI file (/entry_1/data_1/data, /entry_1/sample_1/geometry_1/"
                   "translation) or a Ptychodus diffraction file (patterns, indexes)")
    if magic.startswith(b"\x93NUMPY"):
        raise _cannot(path, "file holds a single .npy array")
    raise _cannot(path, "file is empty" if not magic else f"unknown content (starts with "
                  f"{magic!r})")


def read_scan(path: str | os.PathLike, *, unit: str = "auto",
              product: str | os.PathLike | None = None,
              cxi_translation_sign: int = 1) -> RawScan:
    """Read any supported file (detected by content) into a :class:`RawScan`.

    Args:
        path: the patterns file (NPZ, Ptychodus ``diffraction.h5``, CXI or a live scan
            file).
        unit: "auto" (the unit rule), "counts" or "amplitude".
        product: for a Ptychodus diffraction file, its product (HDF5 or NPZ); default:
            ``product-in.h5``, ``product-out.h5``, ``product-in.npz`` or ``product.h5``
            beside it, first found.
        cxi_translation_sign: for a CXI file, the sign of its translations (1: Ptychodus's,
            -1: the opposite; :mod:`ptycho.formats.cxi`); other formats refuse -1.

    Raises:
        ValueError: one line naming the file and the key for every defect.
    """
    path = str(path)
    if not isinstance(unit, str) or unit not in UNITS:
        raise fail(path, "unit", f"is {unit!r}", "one of 'auto', 'counts', 'amplitude'")
    fmt = detect_format(path)
    if product is not None and fmt != "ptychodus_h5":
        raise fail(path, "product", f"was given for a {fmt} file",
                   "product= only with a Ptychodus diffraction.h5")
    check_cxi_sign(path, fmt, cxi_translation_sign)
    if fmt == "ptychopinn_npz":
        return read_ptychopinn_npz(path, unit=unit)
    if fmt == "project_npz":
        return _read_project_npz(path, unit)
    if fmt == "cxi":
        return read_cxi(path, unit=unit, translation_sign=cxi_translation_sign)
    if fmt == "live_h5":
        return read_live_file(path, unit=unit)
    return read_ptychodus(path, product, unit=unit)


def check_cxi_sign(path: str, fmt: str, sign) -> None:
    """Refuse a translation sign other than the default for a file that is not CXI (the
    other formats store positions in object pixels, with no sign to choose)."""
    if fmt != "cxi" and sign != 1:
        raise fail(str(path), "cxi_translation_sign", f"is {sign!r} for a {fmt} file",
                   "1 (a sign other than 1 only with a CXI file)")


def _read_project_npz(path: str, unit: str) -> RawScan:
    """This project's dataset NPZ (:mod:`ptycho.io`), gridsize 1, as a RawScan."""

    d = load_dataset(path)
    if d.gridsize != 1:
        raise fail(path, "diffraction", f"holds gridsize {d.gridsize} groups",
                   "gridsize 1 (load grouped files with ptycho.io.load_dataset)")
    centres = d.centres[:, 0, :].astype(np.float64)
    patterns = d.diffraction[:, 0]
    if unit == "auto":
        decided = ("amplitude", "this project's NPZ stores amplitudes sqrt(counts) / scale "
                   "(ptycho.io)")
    else:
        decided = decide_unit(patterns, unit, path, "diffraction")
    scale = d.metadata.get("scale") if isinstance(d.metadata, dict) else None
    scale = float(scale) if isinstance(scale, (int, float)) and scale > 0 else None
    gt = d.ground_truth
    return make_raw_scan(
        path, "project_npz", patterns, centres, unit=unit, unit_decided=decided,
        keys={"patterns": "diffraction", "positions": "coords_offsets",
              "probe": "probeGuess", "scan_index": "object_index",
              "object": "YY_ground_truth"},
        probe=d.probe_modes, object_guess=gt, scan_index=d.object_index,
        notes=["read with ptycho.io.load_dataset"], stored_scale=scale)
