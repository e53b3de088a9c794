"""CXI files (spec 1.6, the paths Ptychodus 1.7 reads and writes): reader and writer.

=============================================== ========= ================================
HDF5 path                                       shape     meaning
=============================================== ========= ================================
``/entry_1/data_1/data`` (or                    (n, H, W) counts, DC centred
``/entry_1/instrument_1/detector_1/data``)
``/entry_1/sample_1/geometry_1/translation``    (n, 3)    (x, y, z) metres; legacy
                                                          ``/entry_1/data_1/translation``
``/entry_1/instrument_1/detector_1/distance``   scalar    detector distance z, metres
``.../detector_1/x_pixel_size``, ``y_pixel_size`` scalar  detector pixel, metres
``.../detector_1/mask``                         (H, W)    nonzero = bad pixel (optional)
``/entry_1/instrument_1/source_1/energy``       scalar    photon energy in JOULES
``/entry_1/image_1/data`` (legacy               (.., H, W) probe, complex (optional)
``/entry_1/instrument_1/source_1/illumination``)
``/entry_1/image_2/data``                       (.., H, W) object, complex (optional)
``/entry_1/ptychodus/object_pixel_width_m``,    scalars   Ptychodus's extension (optional)
``object_pixel_height_m``, ``object_center_x_m``,
``object_center_y_m``
=============================================== ========= ================================

A live scan file of the ``cxi`` layout (:mod:`ptycho.formats.live_hdf5`, root attribute
``layout = 'cxi'``) is read as any CXI file, but for the frames whose translation never
arrived (NaN) and the patterns past the last translation written: those are dropped with a
note (:func:`ptycho.formats.live_file.positioned_rows`), where another CXI file is refused.

Translations to object pixels. Sign convention: by default ``x_px = +x_m / pixel_x``,
``y_px = +y_m / pixel_y``, the same axes as the translation, as Ptychodus reads them. CXI
files do not agree on it (some record the sample stage, whose motion moves the beam the
other way across the object), so ``translation_sign=-1`` negates both axes first; the scan's
notes record which sign was used. A wrong sign mirrors the scan: the reconstruction then
fails to converge, or converges to a doubled, inconsistent object.

- when the file carries an object (``/entry_1/image_2/data``) and Ptychodus's pixel size
  and centre (``/entry_1/ptychodus/...``), positions map exactly as for a Ptychodus
  product: ``x_px = (x_m - center_x_m) / pixel_width_m + (W_object - 1) / 2``;
- otherwise the object pixel is the far-field one, ``lambda z / (N * detector pixel)`` per
  axis with ``lambda = h c / E`` (N = pattern width for x, height for y), and the positions
  are centred: with ``h`` the largest distance of a position from the mean position (per
  axis), the canvas is ``2 * ceil(h) + N`` wide and the mean position maps to its pixel
  ``ceil(h) + N // 2`` (the canvas centre), so every patch lies on it.

:func:`write_cxi` writes a :class:`ptycho.formats.scan_with_truth.ScanWithTruth` as
Ptychodus does (translations by the inverse of the Ptychodus mapping, sign +1).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ptycho.formats.checks import fail
from ptycho.formats.geometry import (
    ELECTRON_VOLT_J,
    ScanGeometry,
    WritableGeometry,
    far_field_object_pixel_m,
    geometry_to_write,
    pixels_to_metres,
)
from ptycho.formats.live_file import positioned_rows
from ptycho.formats.raw_scan import RawScan
from ptycho.formats.scan_with_truth import ScanWithTruth
from ptycho.formats.validation import make_raw_scan

__all__ = [
    "DATA_PATHS",
    "TRANSLATION_PATHS",
    "far_field_object_pixel_m",
    "is_cxi",
    "read_cxi",
    "write_cxi",
]

DATA_PATHS = ("/entry_1/data_1/data", "/entry_1/instrument_1/detector_1/data")
TRANSLATION_PATHS = ("/entry_1/sample_1/geometry_1/translation", "/entry_1/data_1/translation")
PROBE_PATHS = ("/entry_1/image_1/data", "/entry_1/instrument_1/source_1/illumination")
OBJECT_PATH = "/entry_1/image_2/data"
DETECTOR = "/entry_1/instrument_1/detector_1"
ENERGY_PATH = "/entry_1/instrument_1/source_1/energy"
PT = "/entry_1/ptychodus"
_PT_KEYS = ("object_pixel_width_m", "object_pixel_height_m", "object_center_x_m",
            "object_center_y_m")


def is_cxi(h5file) -> bool:
    return "entry_1" in h5file


class _Cxi:
    """An open CXI file: its datasets by path, with the reader's one-line refusals."""

    def __init__(self, f, path: str, dataset_type):
        self.f, self.path, self._dataset = f, path, dataset_type

    def ds(self, p):
        obj = self.f.get(p)
        return obj if isinstance(obj, self._dataset) else None

    def first(self, paths, what):
        for p in paths:
            if self.ds(p) is not None:
                return p
        raise fail(self.path, paths[0], "is missing",
                   f"{what} at " + " or ".join(f"'{p}'" for p in paths))

    def scalar(self, p, what):
        d = self.ds(p)
        if d is None:
            raise fail(self.path, p, "is missing", what)
        try:
            v = float(np.asarray(d[()]).reshape(()))
        except (TypeError, ValueError):
            raise fail(self.path, p, f"has shape {d.shape}", f"a scalar ({what})") from None
        if not (math.isfinite(v) and v > 0):
            raise fail(self.path, p, f"is {v!r}", f"a finite value > 0 ({what})")
        return v

    def optional_scalar(self, p):
        d = self.ds(p)
        if d is None:
            return None
        v = float(np.asarray(d[()]).reshape(()))
        return v if math.isfinite(v) else None


def read_cxi(path: str | Path, *, unit: str = "auto", translation_sign: int = 1) -> RawScan:
    """Read a CXI file (see the module docstring)."""
    import h5py

    path = str(path)
    if isinstance(translation_sign, bool) or translation_sign not in (1, -1):
        raise fail(path, "translation_sign", f"is {translation_sign!r}", "1 or -1")
    notes: list[str] = []
    with h5py.File(path, "r") as f:
        cx = _Cxi(f, path, h5py.Dataset)
        dpath, patterns, tpath, trans = _patterns_and_translations(cx, translation_sign,
                                                                   notes)
        bad, probe_path, probe, obj = _mask_probe_object(cx, notes)
        distance = cx.optional_scalar(f"{DETECTOR}/distance")
        px_x = cx.optional_scalar(f"{DETECTOR}/x_pixel_size")
        px_y = cx.optional_scalar(f"{DETECTOR}/y_pixel_size")
        energy_J = cx.optional_scalar(ENERGY_PATH)
        energy_eV = None if energy_J is None else energy_J / ELECTRON_VOLT_J
        pt = {k: cx.optional_scalar(f"{PT}/{k}") for k in _PT_KEYS}
        if obj is not None and obj.ndim >= 2 and all(v is not None for v in pt.values()):
            pos, pix, centre = _ptychodus_positions(path, trans, obj.shape[-2:], pt, notes)
        else:
            pos, pix = _far_field_positions(cx, trans, patterns.shape[1:], notes)
            centre = None
    geometry = ScanGeometry(
        detector_distance_m=distance,
        detector_pixel_m=None if px_x is None or px_y is None else (px_y, px_x),
        photon_energy_eV=energy_eV, object_pixel_m=pix, object_center_m=centre)
    return make_raw_scan(
        path, "cxi", patterns, pos, unit=unit,
        keys={"patterns": dpath, "positions": tpath, "probe": probe_path,
              "bad_pixels": f"{DETECTOR}/mask", "object": OBJECT_PATH},
        probe=probe, bad_pixels=bad, object_guess=obj, geometry=geometry, notes=notes)


def _patterns_and_translations(cx: _Cxi, translation_sign: int, notes: list[str]):
    """``(patterns path, patterns (n, H, W), translation path, translations (n, >= 2)
    float64 with the sign applied to x and y)``."""
    path = cx.path
    dpath = cx.first(DATA_PATHS, "the (n, H, W) diffraction patterns")
    patterns = cx.ds(dpath)[()]
    tpath = cx.first(TRANSLATION_PATHS, "the (n, 3) probe translations (x, y, z) in metres")
    trans = np.asarray(cx.ds(tpath)[()])
    if patterns.ndim != 3:
        raise fail(path, dpath, f"has shape {patterns.shape}", "(n, H, W)")
    if trans.ndim != 2 or trans.shape[1] < 2:
        raise fail(path, tpath, f"has shape {trans.shape}", "(n, 3) (x, y, z) metres")
    live = cx.f.attrs.get("layout") == "cxi" and "scan_id" in cx.f.attrs
    if live and trans.shape[0] < patterns.shape[0]:   # a writer stopped between its flushes
        notes.append(f"{patterns.shape[0] - trans.shape[0]} pattern(s) past the last "
                     "translation written dropped (a live scan file)")
        patterns = patterns[:trans.shape[0]]
    n = patterns.shape[0]
    if trans.shape[0] != n:
        raise fail(path, tpath, f"has {trans.shape[0]} translations",
                   f"{n}, one per pattern of '{dpath}'")
    if trans.dtype.kind not in "fiu":
        raise fail(path, tpath, f"has dtype {trans.dtype}", "a real float dtype")
    trans = trans.astype(np.float64)
    if live and not np.isfinite(trans).all():
        keep = positioned_rows(path, tpath, trans, notes)
        patterns, trans = patterns[keep], trans[keep]
    if not np.isfinite(trans).all():
        raise fail(path, tpath, "contains non-finite values", "finite values only")
    trans[:, :2] *= translation_sign
    notes.append(f"translations '{tpath}' read with sign {translation_sign:+d} "
                 + ("(Ptychodus's: x_px = +x_m / pixel; for files written with the "
                    "opposite sign, rerun with --cxi-translation-sign -1)"
                    if translation_sign == 1 else
                    "(negated: x_px = -x_m / pixel, --cxi-translation-sign -1)"))
    return dpath, patterns, tpath, trans


def _mask_probe_object(cx: _Cxi, notes: list[str]):
    """``(bad pixels or None, probe path, probe (OPR entry 0) or None, object or None)``."""
    mask = cx.ds(f"{DETECTOR}/mask")
    bad = None if mask is None else (np.asarray(mask[()]) != 0)
    probe = None
    probe_path = PROBE_PATHS[0]
    for p in PROBE_PATHS:
        if cx.ds(p) is not None:
            probe_path = p
            probe = np.asarray(cx.ds(p)[()])
            if probe.ndim == 4:
                if probe.shape[0] > 1:
                    notes.append(f"'{p}' has {probe.shape[0]} OPR entries; kept entry 0")
                probe = probe[0]
            break
    obj = cx.ds(OBJECT_PATH)
    obj = None if obj is None else np.asarray(obj[()])
    return bad, probe_path, probe, obj


def _ptychodus_positions(path: str, trans: np.ndarray, object_shape, pt: dict,
                         notes: list[str]):
    """Positions (n, 2) by Ptychodus's mapping onto the file's object, its pixel (y, x)
    and its centre (x, y)."""
    oh, ow = object_shape
    for k in ("object_pixel_width_m", "object_pixel_height_m"):
        if not pt[k] > 0:
            raise fail(path, f"{PT}/{k}", f"is {pt[k]!r}", "a pixel size > 0 metres")
    pix = (pt["object_pixel_height_m"], pt["object_pixel_width_m"])
    centre = (pt["object_center_x_m"], pt["object_center_y_m"])
    x = (trans[:, 0] - centre[0]) / pix[1] + (ow - 1) / 2.0
    y = (trans[:, 1] - centre[1]) / pix[0] + (oh - 1) / 2.0
    notes.append("positions mapped with Ptychodus's object pixel size and centre "
                 f"({PT}) onto '{OBJECT_PATH}'")
    return np.stack([x, y], axis=1), pix, centre


def _far_field_positions(cx: _Cxi, trans: np.ndarray, pattern_shape, notes: list[str]):
    """Positions (n, 2) centred on a canvas with the far-field object pixel, and that
    pixel (y, x)."""
    H, W = pattern_shape
    z = cx.scalar(f"{DETECTOR}/distance", "the detector distance in metres")
    dx = cx.scalar(f"{DETECTOR}/x_pixel_size", "the detector pixel width in metres")
    dy = cx.scalar(f"{DETECTOR}/y_pixel_size", "the detector pixel height in metres")
    e_j = cx.scalar(ENERGY_PATH, "the photon energy in joules")
    e_ev = e_j / ELECTRON_VOLT_J
    pix = (far_field_object_pixel_m(e_ev, z, H, dy), far_field_object_pixel_m(e_ev, z, W, dx))
    xy = trans[:, :2] / np.array([pix[1], pix[0]])
    rel = xy - xy.mean(axis=0)
    half = np.ceil(np.abs(rel).max(axis=0))
    origin = half + np.array([W // 2, H // 2])
    x, y = (rel + origin).T
    notes.append(f"object pixel lambda z / (N * detector pixel) = {pix[1]:.6g} x "
                 f"{pix[0]:.6g} m (x, y); mean position mapped to the canvas centre "
                 f"({origin[0]:.0f}, {origin[1]:.0f}) px")
    return np.stack([x, y], axis=1), pix


def write_cxi(path: str | Path, scan: ScanWithTruth, geometry: ScanGeometry | None = None, *,
              with_product: bool = True, legacy: bool = False) -> Path:
    """CXI 1.6 file as Ptychodus writes it.

    Detector data at ``/entry_1/instrument_1/detector_1/data`` (soft-linked from
    ``/entry_1/data_1/data`` unless ``legacy``), translations (n, 3) metres at
    ``/entry_1/sample_1/geometry_1/translation`` (``legacy``: ``/entry_1/data_1/
    translation``), distance, pixel sizes, mask (uint32, 1 = invalid), energy in joules,
    probe at ``/entry_1/image_1/data`` (``legacy``: ``.../source_1/illumination``). With
    ``with_product``: the object at ``/entry_1/image_2/data`` and Ptychodus's pixel size
    and centre under ``/entry_1/ptychodus``, which fix the metre -> pixel mapping exactly.
    ``geometry`` defaults to :func:`ptycho.formats.geometry.conventional_geometry`.
    """
    import h5py

    g = geometry_to_write(geometry, scan.N)
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
            _write_cxi_product(e, scan, g)
    return dest


def _write_cxi_product(entry, scan: ScanWithTruth, g: WritableGeometry) -> None:
    """The object and Ptychodus's pixel size, centre and position indexes."""
    entry.create_group("image_2").create_dataset("data", data=scan.object[None])
    pt = entry.create_group("ptychodus")
    pt.create_dataset("object_pixel_width_m", data=float(g.object_pixel_m[1]))
    pt.create_dataset("object_pixel_height_m", data=float(g.object_pixel_m[0]))
    pt.create_dataset("object_center_x_m", data=float(g.object_center_m[0]))
    pt.create_dataset("object_center_y_m", data=float(g.object_center_m[1]))
    pt.create_dataset("probe_position_indexes", data=np.arange(scan.n, dtype=np.int64))
