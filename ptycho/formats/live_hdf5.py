"""A scan file that grows while it is measured: HDF5 written and read with SWMR.

The writer (:class:`LiveScanWriter`, ``ptycho-live-sim``) opens the file with
``libver='latest'``, writes the probe, the bad pixels and the root attributes, turns
``swmr_mode`` on and then appends frames chunk by chunk into resizable datasets, flushing
each chunk twice: the patterns first, the positions after them, so a reader that sees a
frame's position sees its pattern. The reader (:class:`LiveScanReader`, ``ptycho-live``)
opens it with ``swmr=True`` and ``refresh()``-es the datasets.

Layouts (the key names of this project's NPZ, of Ptychodus' diffraction.h5 + product, or
the paths of a CXI file, :mod:`ptycho.formats.cxi`; ``DET`` = ``entry_1/instrument_1/
detector_1``):

========== ================ ====================== ======================== ================
role       ``ptychopinn``   ``ptychodus``          ``cxi``                  shape
========== ================ ====================== ======================== ================
patterns   ``diffraction``  ``patterns``           ``DET/data`` [1]         (n, N, N), grows
position x ``xcoords`` (px) ``probe_position_x_m`` ``TRANSLATION`` [2]      (n,), grows [3]
position y ``ycoords`` (px) ``probe_position_y_m`` (the same)               (n,), grows [3]
probe      ``probeGuess``   ``probe``              ``entry_1/image_1/data`` (modes, N, N)
bad pixels ``bad_pixels``   ``bad_pixels``         ``DET/mask`` (uint32)    (N, N)
========== ================ ====================== ======================== ================

[1] soft-linked from ``entry_1/data_1/data``; [2] ``entry_1/sample_1/geometry_1/translation``,
one (n, 3) dataset (x, y, z = 0) in metres; [3] NaN = not written yet.

All hold ``frame_time_s`` (n,) (Unix time each frame was written), ``scan_complete`` (1,)
int8 (1 once the writer closed the scan) and the root attributes ``scan_id`` (new for every
scan), ``layout``, ``unit`` (``counts`` or ``amplitude``) and ``object_pixel_width_m`` /
``object_pixel_height_m`` (for positions in metres: they are ``pixel * size``, relative to
the scan's origin). Positions are probe centres ``(x, y) = (column, row)``. The ``cxi``
layout also holds what the CXI reader needs to place the positions: ``DET/distance``,
``DET/x_pixel_size`` / ``y_pixel_size`` and ``entry_1/instrument_1/source_1/energy``
(joules), the detector pixel written as ``lambda z / (N * object pixel)`` so that the
far-field object pixel is the scan's (distance and energy: the scan's, else 1 m and
10 keV); a finished ``cxi`` live file is an ordinary CXI file. Another writer's CXI (written
with SWMR) is followed too: its patterns at ``DET/data`` or ``entry_1/data_1/data`` and,
without the root attributes, the object pixel the far-field one of those paths.
"""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ptycho.formats.checks import fail
from ptycho.formats.geometry import (
    CONVENTIONAL_GEOMETRY,
    ELECTRON_VOLT_J,
    ScanGeometry,
    far_field_object_pixel_m,
)
from ptycho.formats.hdf5 import h5py_module

__all__ = ["LAYOUTS", "LiveLayout", "LiveScanReader", "LiveScanWriter", "SourceReplacedError"]


@dataclass(frozen=True)
class LiveLayout:
    """Where a layout keeps each role (``x == y``: one (n, 3) dataset (x, y, z))."""

    patterns: str
    x: str
    y: str
    probe: str
    metres: bool
    bad_pixels: str = "bad_pixels"


_DET = "entry_1/instrument_1/detector_1"
_TRANSLATION = "entry_1/sample_1/geometry_1/translation"
_ENERGY = "entry_1/instrument_1/source_1/energy"
LAYOUTS = {"ptychopinn": LiveLayout("diffraction", "xcoords", "ycoords", "probeGuess", False),
           "ptychodus": LiveLayout("patterns", "probe_position_x_m", "probe_position_y_m",
                                   "probe", True),
           "cxi": LiveLayout(f"{_DET}/data", _TRANSLATION, _TRANSLATION,
                             "entry_1/image_1/data", True, f"{_DET}/mask")}
#: where else a CXI file may keep its patterns (another writer's: no soft link)
_CXI_DATA = {"cxi": ("entry_1/data_1/data",)}


class SourceReplacedError(Exception):
    """The file being followed was replaced (a new scan) or can no longer be read."""


class LiveScanWriter:
    """Writes a scan frame by frame into an SWMR HDF5 file (module docstring)."""

    def __init__(self, path, layout: str, probe: np.ndarray, bad_pixels: np.ndarray | None,
                 unit: str, *, chunk: int = 8, pixel_m: tuple[float, float] = (1e-8, 1e-8),
                 geometry: ScanGeometry | None = None):
        h5py = h5py_module()
        self.path, self.layout = Path(path), LAYOUTS[layout]
        modes = np.asarray(probe, np.complex64).reshape(-1, *np.shape(probe)[-2:])
        N = modes.shape[-1]
        self.pixel_m = (float(pixel_m[0]), float(pixel_m[1]))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)      # a new scan is a new file (a new inode)
        f = self.f = h5py.File(self.path, "w", libver="latest")
        f.attrs.update(scan_id=uuid.uuid4().hex, layout=layout, unit=unit,
                       object_pixel_height_m=self.pixel_m[0],
                       object_pixel_width_m=self.pixel_m[1])
        lay = self.layout
        f.create_dataset(lay.probe, data=modes)
        bad = np.zeros((N, N), bool) if bad_pixels is None else np.asarray(bad_pixels, bool)
        f.create_dataset(lay.bad_pixels, data=bad.astype(np.uint32) if layout == "cxi" else bad)
        c = max(1, int(chunk))
        self.patterns = f.create_dataset(lay.patterns, (0, N, N), np.float32,
                                         maxshape=(None, N, N), chunks=(c, N, N))
        cols = (3,) if lay.x == lay.y else ()
        self.xy = [f.create_dataset(k, (0, *cols), np.float64, maxshape=(None, *cols),
                                    chunks=(max(c, 64), *cols), fillvalue=np.nan)
                   for k in dict.fromkeys((lay.x, lay.y))]
        if layout == "cxi":
            self._cxi_geometry(N, geometry)
        self.times = f.create_dataset("frame_time_s", (0,), np.float64, maxshape=(None,),
                                      chunks=(max(c, 64),), fillvalue=np.nan)
        self.complete = f.create_dataset("scan_complete", data=np.zeros(1, np.int8))
        f.swmr_mode = True
        self.n = 0

    def _cxi_geometry(self, N: int, geometry: ScanGeometry | None) -> None:
        """What CXI readers need to place the positions (module docstring)."""
        g = geometry or ScanGeometry()
        z = g.detector_distance_m or CONVENTIONAL_GEOMETRY["detector_distance_m"]
        e_ev = g.photon_energy_eV or CONVENTIONAL_GEOMETRY["photon_energy_eV"]
        f = self.f
        f.create_dataset("cxi_version", data=160)
        f.create_dataset(f"{_DET}/distance", data=float(z))
        f.create_dataset(f"{_DET}/x_pixel_size",
                         data=far_field_object_pixel_m(e_ev, z, N, self.pixel_m[1]))
        f.create_dataset(f"{_DET}/y_pixel_size",
                         data=far_field_object_pixel_m(e_ev, z, N, self.pixel_m[0]))
        f.create_dataset(_ENERGY, data=float(e_ev) * ELECTRON_VOLT_J)
        f.create_group("entry_1/data_1")["data"] = h5py_module().SoftLink(f"/{_DET}/data")

    def _columns(self, xy: np.ndarray) -> list[np.ndarray]:
        """The values of each position dataset: x and y, or one (k, 3) (x, y, 0)."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        x, y = xy[:, 0], xy[:, 1]
        if self.layout.metres:
            x, y = x * self.pixel_m[1], y * self.pixel_m[0]
        return [np.stack([x, y, np.zeros_like(x)], axis=1)] if len(self.xy) == 1 else [x, y]

    def append(self, patterns: np.ndarray, positions_px: np.ndarray) -> None:
        """Append frames (k, N, N) and their positions (k, 2) (x, y) px, NaN where a
        position is not known yet; the patterns are flushed before the positions."""
        k = len(patterns)
        n0, n1 = self.n, self.n + k
        self.patterns.resize(n1, axis=0)
        self.patterns[n0:n1] = np.asarray(patterns, np.float32)
        self.times.resize(n1, axis=0)
        self.times[n0:n1] = time.time()
        self.f.flush()
        for ds, v in zip(self.xy, self._columns(positions_px)):
            ds.resize(n1, axis=0)
            ds[n0:n1] = v
        self.f.flush()
        self.n = n1

    def set_position(self, index: int, xy) -> None:
        """A position that arrives late."""
        for ds, v in zip(self.xy, self._columns(xy)):
            ds[int(index)] = v[0]
        self.f.flush()

    def close(self) -> None:
        """Mark the scan complete and close the file."""
        self.complete[0] = 1
        self.f.flush()
        self.f.close()


class LiveScanReader:
    """Follows a file of :class:`LiveScanWriter` (module docstring): :meth:`poll` gives the
    frames whose pattern and position are both there, each once, in order of arrival."""

    def __init__(self, path):
        h5py = h5py_module()
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise fail(self.path, "file", "does not exist", "a scan file being written by "
                       "the detector (ptycho-live-sim writes one)")
        st = os.stat(self.path)
        self._ident = (st.st_dev, st.st_ino)
        try:
            self.f = h5py.File(self.path, "r", libver="latest", swmr=True)
        except OSError as err:
            raise fail(self.path, "file", f"cannot be opened with SWMR ({str(err).splitlines()[0]})",
                       "an HDF5 file written with libver='latest' and swmr_mode") from None
        self._open_layout()
        self.cursor, self.pending = 0, []

    def _open_layout(self) -> None:
        f = self.f
        found = next(((k, replace(lay, patterns=p)) for k, lay in LAYOUTS.items() if lay.x in f
                      for p in (lay.patterns, *_CXI_DATA.get(k, ())) if p in f), None)
        if found is None:
            self.f.close()
            raise fail(self.path, "diffraction", "is missing", "the datasets of a live scan: "
                       "diffraction + xcoords/ycoords, patterns + probe_position_x_m/_y_m, or "
                       f"CXI's entry_1/data_1/data + {_TRANSLATION}")
        name, lay = found
        self.layout_name, self.layout = name, lay
        if lay.probe not in f:
            raise fail(self.path, lay.probe, "is missing", "the probe (modes, N, N), in the "
                       "patterns' units")
        probe = np.asarray(f[lay.probe][()])
        self.probe = probe.reshape(-1, *probe.shape[-2:]).astype(np.complex64)
        self.patterns = f[lay.patterns]
        self.N = int(self.patterns.shape[-1])
        self.bad_pixels = (np.asarray(f[lay.bad_pixels][()]) != 0 if lay.bad_pixels in f
                           else None)
        self.xy = tuple(f[k] for k in dict.fromkeys((lay.x, lay.y)))
        self.times = f["frame_time_s"] if "frame_time_s" in f else None
        self.complete_ds = f["scan_complete"] if "scan_complete" in f else None
        a = f.attrs
        self.scan_id = str(a.get("scan_id", ""))
        self.unit = str(a.get("unit", "")) or None
        pix = (float(a.get("object_pixel_height_m", 1.0)), float(a.get("object_pixel_width_m", 1.0)))
        if name == "cxi" and "object_pixel_width_m" not in a:
            pix = self._far_field_pixel()
        self.pixel_m = pix if lay.metres else None
        self._scale = (pix[1], pix[0]) if lay.metres else (1.0, 1.0)

    def _far_field_pixel(self) -> tuple[float, float]:
        """The object pixel (y, x) ``lambda z / (N * detector pixel)`` of a CXI file."""
        f, need = self.f, (f"{_DET}/distance", f"{_DET}/y_pixel_size", f"{_DET}/x_pixel_size",
                           _ENERGY)
        missing = next((k for k in need if k not in f), None)
        if missing is not None:
            self.f.close()
            raise fail(self.path, missing, "is missing", "a CXI live scan with its geometry "
                       "(distance, pixel sizes, energy) or the root attributes "
                       "object_pixel_width_m / object_pixel_height_m")
        z, dy, dx, e_j = (float(np.asarray(f[k][()]).reshape(())) for k in need)
        e_ev = e_j / ELECTRON_VOLT_J
        return (far_field_object_pixel_m(e_ev, z, self.N, dy),
                far_field_object_pixel_m(e_ev, z, self.N, dx))

    def check_same_file(self) -> None:
        """Raise :class:`SourceReplacedError` when the path now names another file (a new scan
        written in place of this one) or none."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise SourceReplacedError(f"source '{self.path}' was removed") from None
        if (st.st_dev, st.st_ino) != self._ident:
            raise SourceReplacedError(f"source '{self.path}' was replaced by a new scan (another "
                                 f"file at that path; scan_id {self.scan_id} no longer there)")

    def is_complete(self) -> bool:
        if self.complete_ds is None:
            return False
        self.complete_ds.refresh()
        return bool(self.complete_ds[0])

    def _positions(self, lo: int, hi: int) -> np.ndarray:
        if len(self.xy) == 1:           # one (n, 3) translation (x, y, z)
            t = np.asarray(self.xy[0][lo:hi], np.float64)
            x, y = t[:, 0], t[:, 1]
        else:
            x, y = (np.asarray(ds[lo:hi], np.float64) for ds in self.xy)
        return np.stack([x / self._scale[0], y / self._scale[1]], axis=1)

    def poll(self, limit: int = 4096):
        """``(indexes (k,), patterns (k, N, N) as stored, positions (k, 2) px, written
        times (k,))`` of the frames newly complete (at most ``limit``); frames whose
        position is not there yet wait in ``pending``."""
        self.check_same_file()
        try:
            for ds in (self.patterns, *self.xy) + ((self.times,) if self.times is not None else ()):
                ds.refresh()
            n = min(self.patterns.shape[0], *(ds.shape[0] for ds in self.xy))
        except (OSError, RuntimeError, KeyError) as err:
            raise SourceReplacedError(f"source '{self.path}' can no longer be read "
                                 f"({str(err).splitlines()[0]})") from None
        if n < self.cursor:
            raise SourceReplacedError(f"source '{self.path}' shrank from {self.cursor} to {n} "
                                 f"frames (a new scan written into it)")
        hi = min(n, self.cursor + limit)
        pos = self._positions(self.cursor, hi)
        idx = np.arange(self.cursor, hi)
        late = [i for i in self.pending if np.isfinite(self._positions(i, i + 1)).all()]
        self.pending = [i for i in self.pending if i not in late]
        ok = np.isfinite(pos).all(axis=1)
        self.pending += [int(i) for i in idx[~ok]]
        take = np.concatenate([np.asarray(late, np.int64), idx[ok]])
        lo, self.cursor = self.cursor, hi
        if take.size == 0:
            return take, np.zeros((0, self.N, self.N), np.float32), np.zeros((0, 2)), np.zeros(0)
        pats = self._rows(self.patterns, late, lo, hi, ok)
        xy = np.concatenate([self._positions(i, i + 1) for i in late] + [pos[ok]])
        times = (self._rows(self.times, late, lo, hi, ok) if self.times is not None
                 else np.full(len(take), np.nan))
        return take, pats, xy, times

    @staticmethod
    def _rows(ds, late: list[int], lo: int, hi: int, ok: np.ndarray) -> np.ndarray:
        """The rows ``late`` (one by one) then those of ``lo..hi`` where ``ok``."""
        block = np.asarray(ds[lo:hi])[ok] if hi > lo else np.asarray(ds[0:0])
        return np.concatenate([np.asarray(ds[i:i + 1]) for i in late] + [block])

    def caught_up(self) -> bool:
        """Every frame written so far has been looked at."""
        return self.cursor >= self.patterns.shape[0]

    def read_frames(self, ids) -> np.ndarray:
        """The stored patterns of frames ``ids`` (in that order; one read when close)."""
        ids = np.asarray(ids, np.int64)
        lo, hi = int(ids.min()), int(ids.max()) + 1
        if hi - lo <= 4 * len(ids):
            return np.asarray(self.patterns[lo:hi])[ids - lo]
        return np.stack([np.asarray(self.patterns[int(i)]) for i in ids])

    def close(self) -> None:
        self.f.close()
