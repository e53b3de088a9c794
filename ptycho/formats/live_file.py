"""A live scan file (:mod:`ptycho.formats.live_hdf5`, ``ptycho-live-sim``) read as an
ordinary scan file once it is written: format ``'live_h5'`` of :func:`ptycho.formats.
read_scan`, for the ``ptychopinn`` and ``ptychodus`` layouts (positions in the file itself);
a ``cxi`` live file is a CXI file and read as one (:mod:`ptycho.formats.cxi`).

- patterns as stored, positions in object pixels (a ``ptychodus`` file's metres divided by
  the root attributes ``object_pixel_width_m`` / ``object_pixel_height_m``), the probe and
  the bad pixels; the unit, with ``unit="auto"``, is the root attribute ``unit`` the writer
  recorded;
- a frame whose position never arrived (NaN, :func:`positioned_rows`) is dropped, with one
  note and one logged warning naming how many and the first; so are the patterns past the
  last position written (a writer stopped between its two flushes), and a file the writer
  did not mark complete is read as far as it got, with a note.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from ptycho.formats.checks import fail
from ptycho.formats.geometry import ScanGeometry
from ptycho.formats.hdf5 import h5py_module
from ptycho.formats.live_hdf5 import LAYOUTS
from ptycho.formats.raw_scan import RawScan
from ptycho.formats.validation import make_raw_scan

__all__ = ["FILE_LAYOUTS", "live_layout_of", "positioned_rows", "read_live_file"]

logger = logging.getLogger(__name__)

#: the live layouts read here (the ``cxi`` one is read by the CXI reader)
FILE_LAYOUTS = ("ptychopinn", "ptychodus")


def live_layout_of(h5file) -> str | None:
    """The live layout of an open HDF5 file that holds its patterns and both position
    datasets (:data:`FILE_LAYOUTS`), else None."""
    for name in FILE_LAYOUTS:
        lay = LAYOUTS[name]
        if all(k in h5file for k in (lay.patterns, lay.x, lay.y)):
            return name
    return None


def positioned_rows(path: str, key: str, xy: np.ndarray, notes: list[str]) -> np.ndarray:
    """The frames of a live file whose position arrived (finite x and y): a bool (n,) mask;
    the others are dropped with one note and one warning, all of them refused."""
    ok = np.isfinite(xy[:, :2]).all(axis=1)
    if not ok.any():
        raise fail(path, key, f"has no position for any of its {len(ok)} frames (all NaN)",
                   "a live scan with at least one frame whose position arrived")
    if not ok.all():
        lost = np.flatnonzero(~ok)
        msg = (f"{lost.size} frame(s) whose position never arrived (NaN in '{key}'; first: "
               f"frame {lost[0]}) dropped; {int(ok.sum())} of {len(ok)} frames read")
        notes.append(msg)
        logger.warning("dataset '%s': %s", path, msg)
    return ok


def read_live_file(path: str | os.PathLike, *, unit: str = "auto") -> RawScan:
    """Read a live scan file of the ``ptychopinn`` or ``ptychodus`` layout (module
    docstring)."""
    path = str(path)
    notes: list[str] = []
    name, d = _arrays(path)
    lay = LAYOUTS[name]
    x, y, pix = d["x"], d["y"], d["pixel_m"]
    if lay.metres:
        if pix is None:
            raise fail(path, "object_pixel_width_m", "is missing (a root attribute)",
                       "the object pixel size in metres that divides the positions")
        x, y = x / pix[1], y / pix[0]
    patterns = d["patterns"]
    n = min(len(patterns), len(x), len(y))
    if n < len(patterns):
        notes.append(f"{len(patterns) - n} pattern(s) past the last position written dropped")
    if not d["complete"]:
        notes.append("the writer did not mark the scan complete (scan_complete = 0): read "
                     f"the {n} frames written")
    xy = np.stack([x[:n], y[:n]], axis=1)
    keep = positioned_rows(path, lay.x, xy, notes)
    decided = None
    if unit == "auto" and d["unit"] in ("counts", "amplitude"):
        decided = (d["unit"], f"the live file's root attribute unit = {d['unit']!r}")
    return make_raw_scan(
        path, "live_h5", patterns[:n][keep], xy[keep], unit=unit, unit_decided=decided,
        keys={"patterns": lay.patterns, "positions": lay.x, "probe": lay.probe,
              "bad_pixels": lay.bad_pixels},
        probe=d["probe"], bad_pixels=d["bad_pixels"],
        geometry=ScanGeometry(object_pixel_m=pix),
        notes=[f"live scan file, layout '{name}'", *notes])


def _arrays(path: str) -> tuple[str, dict]:
    """The layout and the stored arrays and attributes of a live file."""
    with h5py_module().File(path, "r") as f:
        name = live_layout_of(f)
        if name is None:
            raise fail(path, "xcoords", "is missing", "a live scan file (diffraction + "
                       "xcoords/ycoords, or patterns + probe_position_x_m/_y_m)")
        lay, a = LAYOUTS[name], f.attrs

        def get(key):
            return np.asarray(f[key][()]) if key in f else None
        ph, pw = (float(a[k]) if k in a else None
                  for k in ("object_pixel_height_m", "object_pixel_width_m"))
        complete = get("scan_complete")
        d = {"patterns": get(lay.patterns), "x": get(lay.x).astype(np.float64),
             "y": get(lay.y).astype(np.float64), "probe": get(lay.probe),
             "bad_pixels": get(lay.bad_pixels),
             "complete": complete is not None and bool(complete.any()),
             "unit": str(a.get("unit", "")),
             "pixel_m": None if ph is None or pw is None else (ph, pw)}
    return name, d
