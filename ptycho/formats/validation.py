"""The validating constructor of :class:`ptycho.formats.raw_scan.RawScan`.

Every reader hands the arrays it found to :func:`make_raw_scan`, with the file's own name
for each role (``keys``: ``patterns``, ``positions``, ``probe``, ``bad_pixels``,
``scan_index``, ``object``), so that each refusal is one line naming the file and its key:
``dataset '<file>': key '<key>' <what> (expected <allowed>)``. The roles are checked in
this order: patterns, bad pixels, the patterns' sign, positions, probe, object, scan index.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ptycho.formats.checks import check_finite, check_real, fail, shape_text
from ptycho.formats.geometry import ScanGeometry
from ptycho.formats.raw_scan import MAX_SPAN_PX, RawScan
from ptycho.formats.units import decide_unit

__all__ = ["make_raw_scan"]

_ROLES = ("patterns", "positions", "probe", "bad_pixels", "scan_index", "object")


def make_raw_scan(path: str, format: str, patterns: np.ndarray,
                  positions_px: np.ndarray, *, unit: str = "auto",
                  keys: Mapping[str, str] | None = None,
                  probe: np.ndarray | None = None, bad_pixels: np.ndarray | None = None,
                  object_guess: np.ndarray | None = None,
                  scan_index: np.ndarray | None = None,
                  geometry: ScanGeometry | None = None, notes: list[str] | None = None,
                  stored_scale: float | None = None,
                  unit_decided: tuple[str, str] | None = None) -> RawScan:
    """Validate the arrays a reader found and build the :class:`RawScan`.

    Refuses (one line each): patterns that are not (n, H, W) with H == W and n >= 1, of a
    non-real dtype, with NaN / Inf, or negative at a measured pixel; positions that are not
    (n, 2), not finite, of a different count than the patterns, or spanning more than
    :data:`ptycho.formats.raw_scan.MAX_SPAN_PX`; a probe that is not (modes, Hp, Wp), not
    finite, or larger than the patterns; bad pixels of another shape; a scan index of
    another length or negative.
    """
    path = str(path)
    k = {role: role for role in _ROLES}
    k.update(keys or {})
    notes = list(notes or [])
    p = _patterns(path, k["patterns"], patterns)
    if unit_decided is None:
        unit_decided = decide_unit(p, unit, path, k["patterns"])
    unit_name, unit_rule = unit_decided
    n, H, W = p.shape
    bp = None if bad_pixels is None else _bad_pixels(path, k["bad_pixels"], bad_pixels,
                                                     (H, W), k["patterns"])
    _no_negative(path, k["patterns"], p, bp, unit_name)
    pf = np.ascontiguousarray(p, dtype=np.float32)
    pos = _positions(path, k["positions"], positions_px, n, k["patterns"])
    pr = None if probe is None else _probe(path, k["probe"], probe, (H, W), notes)
    og = None if object_guess is None else _object(path, k["object"], object_guess, notes)
    si = (np.zeros(n, np.int64) if scan_index is None
          else _scan_index(path, k["scan_index"], scan_index, n))
    return RawScan(path=path, format=format, patterns=pf, unit=unit_name, unit_rule=unit_rule,
                   positions_px=np.ascontiguousarray(pos), probe=pr, bad_pixels=bp,
                   object_guess=og, scan_index=si, geometry=geometry or ScanGeometry(),
                   notes=notes, keys=k, stored_scale=stored_scale)


def _patterns(path: str, kp: str, patterns) -> np.ndarray:
    """(n, H, W) square patterns, n >= 1, real, finite."""
    p = np.asarray(patterns)
    if p.ndim != 3:
        raise fail(path, kp, f"has shape {shape_text(p)} (ndim {p.ndim})", "(n, H, W)")
    n, H, W = p.shape
    if n == 0:
        raise fail(path, kp, "is empty (0 patterns)", "at least 1 pattern")
    if H != W or H == 0:
        raise fail(path, kp, f"has non-square patterns of shape {shape_text(p)}",
                   "square (n, N, N) patterns")
    check_real(path, kp, p)
    if p.dtype.kind == "f":
        check_finite(path, kp, p)
    return p


def _bad_pixels(path: str, kb: str, bad_pixels, shape: tuple[int, int], kp: str
                ) -> np.ndarray:
    """(H, W) bool mask (True = not measured) of the patterns' shape."""
    H, W = shape
    b = np.asarray(bad_pixels)
    if b.shape != (H, W):
        raise fail(path, kb, f"has shape {shape_text(b)}",
                   f"({H}, {W}) to match the patterns of {kp!r}")
    if b.dtype.kind not in "biuf":
        raise fail(path, kb, f"has dtype {b.dtype}", "bool (True = not measured)")
    if b.dtype.kind == "f":
        check_finite(path, kb, b)
    return np.ascontiguousarray(b != 0)


def _no_negative(path: str, kp: str, p: np.ndarray, bp: np.ndarray | None,
                 unit_name: str) -> None:
    """Refuse negative values at measured pixels (bad pixels may hold anything)."""
    measured = p if bp is None else p[:, ~bp]
    if p.dtype.kind != "u" and measured.size:
        n_neg = int((measured < 0).sum())
        if n_neg:
            raise fail(path, kp, f"has {n_neg} negative values at measured pixels "
                       f"(min {float(measured.min()):.4g})",
                       f"{unit_name} >= 0 (negative values are only allowed at bad pixels)")


def _positions(path: str, kx: str, positions_px, n: int, kp: str) -> np.ndarray:
    """(n, 2) finite float64 probe centres spanning at most MAX_SPAN_PX per axis."""
    pos = np.asarray(positions_px)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise fail(path, kx, f"has shape {shape_text(pos)}", "(n, 2) probe centres (x, y)")
    if pos.shape[0] != n:
        raise fail(path, kx, f"has {pos.shape[0]} positions",
                   f"{n}, one per pattern of {kp!r}")
    check_real(path, kx, pos)
    pos = pos.astype(np.float64)
    check_finite(path, kx, pos)
    span = pos.max(axis=0) - pos.min(axis=0)
    if (span > MAX_SPAN_PX).any():
        raise fail(path, kx, f"spans {span[0]:.6g} x {span[1]:.6g} px (x, y)",
                   f"at most {MAX_SPAN_PX} px per axis; patches would fall off any sensible "
                   "object canvas (wrong units?)")
    return pos


def _probe(path: str, kq: str, probe, shape: tuple[int, int], notes: list[str]
           ) -> np.ndarray:
    """(modes, Hp, Wp) complex64 probe no larger than the patterns."""
    H, W = shape
    q = np.asarray(probe)
    if q.ndim == 2:
        q = q[None]
    if q.ndim != 3 or 0 in q.shape:
        raise fail(path, kq, f"has shape {shape_text(probe)}", "(H, W) or (modes, H, W)")
    if q.dtype.kind not in "fiuc":
        raise fail(path, kq, f"has dtype {q.dtype}", "a complex (or real numeric) dtype")
    if q.shape[1] > H or q.shape[2] > W:
        raise fail(path, kq, f"has shape {shape_text(probe)}, larger than the patterns "
                   f"({H}, {W})", f"modes of at most ({H}, {W})")
    pr = np.ascontiguousarray(q, dtype=np.complex64)
    check_finite(path, kq, pr)
    if pr.shape[1:] != (H, W):
        notes.append(f"probe {pr.shape[1:]} zero-padded (centred) to the pattern size "
                     f"({H}, {W}) by to_dataset")
    return pr


def _object(path: str, ko: str, object_guess, notes: list[str]) -> np.ndarray:
    """Layer 0 of the object, (Ho, Wo) complex64."""
    o = np.asarray(object_guess)
    if o.ndim == 3 and o.shape[0] >= 1:
        if o.shape[0] > 1:
            notes.append(f"{ko!r} has {o.shape[0]} layers; kept layer 0")
        o = o[0]
    if o.ndim != 2 or 0 in o.shape:
        raise fail(path, ko, f"has shape {shape_text(object_guess)}", "(H, W) or (layers, H, W)")
    if o.dtype.kind not in "fiuc":
        raise fail(path, ko, f"has dtype {o.dtype}", "a complex (or real numeric) dtype")
    og = np.ascontiguousarray(o, dtype=np.complex64)
    check_finite(path, ko, og)
    return og


def _scan_index(path: str, ks: str, scan_index, n: int) -> np.ndarray:
    """(n,) int64 scan / object index of each pattern, >= 0."""
    si = np.asarray(scan_index)
    if si.shape != (n,):
        raise fail(path, ks, f"has shape {shape_text(si)}", f"({n},), one per pattern")
    if si.dtype.kind not in "iu":
        raise fail(path, ks, f"has dtype {si.dtype}", "an integer dtype")
    if (si < 0).any():
        raise fail(path, ks, "has negative values", "indices >= 0")
    return si.astype(np.int64)
