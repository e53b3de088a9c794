"""The raw-scan record every format reader returns, and its conversion to a dataset.

A :class:`RawScan` holds one ptychographic scan as the file stored it, after validation:

- ``patterns`` (n, H, W) float32, exactly the stored values (photon **counts** or
  diffraction **amplitudes**; ``unit`` says which and ``unit_rule`` why), DC at the centre.
- ``positions_px`` (n, 2) float64 probe centres ``(x, y) = (column, row)`` in object
  pixels; a patch of size N centred at ``c`` covers pixels ``c - N/2 .. c + N/2 - 1``
  (centre = pixel ``N // 2`` of the patch, as in :mod:`ptycho.dataset`).
- ``probe`` (modes, Hp, Wp) complex64 or None, ``bad_pixels`` (H, W) bool (True = not
  measured) or None, ``object_guess`` (Ho, Wo) complex64 or None (layer 0 of the file's
  object), ``scan_index`` (n,) int64 (which scan / object each pattern belongs to),
  ``geometry`` (:class:`ScanGeometry`, physical units, every field optional) and
  ``notes`` (what the reader skipped or changed, one sentence each).

Unit rule (how ``unit`` is decided when ``unit="auto"``):

1. an integer dtype (``uint16``, ``int32``, ...) means **counts**;
2. a float dtype whose values are all integers (``|x - round(x)| < 1e-6`` over an evenly
   strided sample of at most 10**6 values) and whose maximum is > 1 means **counts**;
3. anything else means **amplitude**.

``unit="counts"`` or ``unit="amplitude"`` forces the answer; any other value is refused.

Conversion (:meth:`RawScan.to_dataset`), with ``s = photon_scale`` (default 1.0):

- counts: ``amplitude = sqrt(counts) / s`` (float64 arithmetic, stored float32), so
  ``counts = (s * amplitude) ** 2``; the probe is divided by ``s`` too, so that
  ``|F{O * P}|`` keeps matching the amplitudes when the file's probe carries the photon
  scale (Ptychodus products and :mod:`ptycho.datagen.spiral_scan` do).
- amplitudes: passed through unchanged, probe unchanged; ``s`` only labels the scale the
  amplitudes already carry (metadata ``scale``).
- bad pixels are set to 0 in the amplitudes and carried in ``bad_pixels``.
- positions: the patch corners are ``c - N // 2``. If the smallest corner is already in
  ``[margin, 65536]`` nothing moves (positions stay aligned with the file's object array);
  otherwise every position is shifted by the same integer vector ``(dx, dy)`` that brings the
  smallest corner into ``[margin, margin + 1)``. The shift is stored as metadata
  ``position_origin_px = [dx, dy]``: file position = dataset position - shift.
  ``canvas_shape = [H, W]`` is the smallest canvas that holds every patch
  (``ceil(max corner) + N`` per axis; a sub-pixel patch touches N + 1 pixels).

Every refusal is one line: ``dataset '<file>': key '<key>' <what> (expected <allowed>)``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ptycho.dataset import PtychoDataset
from ptycho.grouping import group_centre_and_offsets, group_neighbours

__all__ = [
    "MAX_SPAN_PX",
    "UNITS",
    "RawScan",
    "ScanGeometry",
    "decide_unit",
    "fail",
    "make_raw_scan",
]

UNITS = ("auto", "counts", "amplitude")

#: Largest accepted extent of the probe positions along either axis, in object pixels.
MAX_SPAN_PX = 65536

#: Values sampled by the unit rule (evenly strided over the flattened patterns).
_UNIT_SAMPLE = 1_000_000


def fail(path: str, key: str, what: str, expected: str) -> ValueError:
    """The project's one-line refusal, naming the file and the key."""
    text = f"dataset '{path}': key '{key}' {what} (expected {expected})"
    return ValueError(" ".join(text.split("\n")))


def _shape(a: np.ndarray) -> str:
    return "(" + ", ".join(str(s) for s in np.shape(a)) + ")"


@dataclass(frozen=True)
class ScanGeometry:
    """Physical geometry of a scan; every field is optional (None = not in the file).

    ``detector_pixel_m`` and ``object_pixel_m`` are (y, x) = (height, width) in metres;
    ``object_center_m`` is (x, y) in metres (Ptychodus's object centre).
    """

    detector_distance_m: float | None = None
    detector_pixel_m: tuple[float, float] | None = None
    photon_energy_eV: float | None = None
    object_pixel_m: tuple[float, float] | None = None
    object_center_m: tuple[float, float] | None = None

    @property
    def wavelength_m(self) -> float | None:
        """``h c / E`` in metres, or None without a photon energy."""
        if not self.photon_energy_eV:
            return None
        return wavelength_m(self.photon_energy_eV)

    def to_dict(self) -> dict[str, Any]:
        def conv(v):
            return None if v is None else (list(v) if isinstance(v, tuple) else float(v))
        return {
            "detector_distance_m": conv(self.detector_distance_m),
            "detector_pixel_m_yx": conv(self.detector_pixel_m),
            "photon_energy_eV": conv(self.photon_energy_eV),
            "object_pixel_m_yx": conv(self.object_pixel_m),
            "object_center_m_xy": conv(self.object_center_m),
        }


# CODATA exact values (SI 2019).
PLANCK_J_S = 6.62607015e-34
LIGHT_SPEED_M_S = 299792458.0
ELECTRON_VOLT_J = 1.602176634e-19


def wavelength_m(photon_energy_eV: float) -> float:
    """``lambda = h c / E`` for a photon energy in eV."""
    return PLANCK_J_S * LIGHT_SPEED_M_S / (float(photon_energy_eV) * ELECTRON_VOLT_J)


def decide_unit(patterns: np.ndarray, unit: str, path: str, key: str) -> tuple[str, str]:
    """Apply the unit rule (module docstring); return ``(unit, unit_rule)``."""
    if not isinstance(unit, str) or unit not in UNITS:
        raise fail(path, "unit", f"is {unit!r}", "one of 'auto', 'counts', 'amplitude'")
    dtype = patterns.dtype
    if unit != "auto":
        return unit, f"forced by unit={unit!r} ({key!r} stored as {dtype})"
    if dtype.kind in "iu":
        return "counts", f"integer dtype {dtype} of {key!r} -> counts"
    flat = patterns.reshape(-1)
    if flat.size > _UNIT_SAMPLE:
        idx = np.linspace(0, flat.size - 1, _UNIT_SAMPLE).astype(np.int64)
        sample = flat[idx]
    else:
        sample = flat
    sample = sample.astype(np.float64)
    integral = bool(np.all(np.abs(sample - np.round(sample)) < 1e-6)) if sample.size else False
    vmax = float(np.max(flat)) if flat.size else 0.0
    n_s = int(sample.size)
    if integral and vmax > 1:
        return "counts", (f"float dtype {dtype} of {key!r} with integer values "
                          f"(|x - round(x)| < 1e-6 on {n_s} sampled values) and max "
                          f"{vmax:.6g} > 1 -> counts")
    why = "non-integer values" if not integral else f"max {vmax:.6g} <= 1"
    return "amplitude", f"float dtype {dtype} of {key!r} with {why} -> amplitude"


@dataclass(frozen=True, eq=False)
class RawScan:
    """One validated scan as stored in a file (see the module docstring).

    Build it with :func:`make_raw_scan` (which validates); ``keys`` maps the roles
    ``patterns``, ``positions``, ``probe``, ``bad_pixels``, ``scan_index``, ``object`` to
    the names the file uses, so later refusals name the file's own keys.
    """

    path: str
    format: str
    patterns: np.ndarray
    unit: str
    unit_rule: str
    positions_px: np.ndarray
    probe: np.ndarray | None
    bad_pixels: np.ndarray | None
    object_guess: np.ndarray | None
    scan_index: np.ndarray
    geometry: ScanGeometry = field(default_factory=ScanGeometry)
    notes: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    stored_scale: float | None = None

    @property
    def n(self) -> int:
        return int(self.patterns.shape[0])

    @property
    def N(self) -> int:
        return int(self.patterns.shape[-1])

    def key(self, role: str) -> str:
        return self.keys.get(role, role)

    # ------------------------------------------------------------------------------
    def amplitudes(self, photon_scale: float | None = None) -> tuple[np.ndarray, float]:
        """(n, N, N) float32 amplitudes (bad pixels 0) and the scale ``s`` used."""
        s = self._scale(photon_scale)
        if self.unit == "counts":
            c = np.maximum(self.patterns.astype(np.float64), 0.0)
            amp = (np.sqrt(c) / s).astype(np.float32)
        else:
            amp = np.maximum(self.patterns, 0.0).astype(np.float32, copy=True)
        if self.bad_pixels is not None:
            amp[:, self.bad_pixels] = 0.0
        return amp, s

    def _scale(self, photon_scale: float | None) -> float:
        if photon_scale is None:
            return float(self.stored_scale) if self.stored_scale else 1.0
        s = photon_scale
        if isinstance(s, bool) or not isinstance(s, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(s)) or float(s) <= 0:
            raise fail(self.path, "photon_scale", f"is {photon_scale!r}",
                       "a finite number > 0 (counts = (s * amplitude)**2)")
        return float(s)

    def to_dataset(self, gridsize: int = 1, photon_scale: float | None = None,
                   N: int | None = None, *, margin: int = 0):
        """Convert to a :class:`ptycho.dataset.PtychoDataset` (channel-first).

        Args:
            gridsize: 1 (one pattern per sample) or 2 (groups of 4 neighbours from
                :func:`ptycho.grouping.group_neighbours`).
            photon_scale: ``s`` in ``amplitude = sqrt(counts) / s`` (default: the file's
                own scale when it records one, else 1.0).
            N: expected pattern size; a different size is refused (cropping or binning
                the detector would change the object pixel size, so it is not done here).
            margin: the smallest patch corner lands at >= ``margin`` pixels.

        Returns:
            PtychoDataset with ``diffraction`` (n_groups, C, N, N) float32,
            ``coords_offsets`` (group centres) / ``coords_nominal`` (patch - centre),
            ``probe`` (N, N) or (modes, N, N) complex64, ``object_index`` = scan_index,
            ``bad_pixels`` (N, N) bool or None and the metadata keys ``format``, ``unit``,
            ``unit_rule``, ``scale``, ``normalisation``, ``canvas_shape``,
            ``position_origin_px``, ``position_convention``, ``source_path``,
            ``n_patterns``, ``gridsize``, ``mean_counts_per_pattern``,
            ``amplitude_rms``, ``geometry``, ``notes``.
        """

        Np = self.N
        if N is not None and int(N) != Np:
            raise fail(self.path, self.key("patterns"), f"has pattern size N = {Np}",
                       f"N = {int(N)}, the study's --N; pass --N {Np} to use these patterns, or "
                       "crop or bin the detector before reading (either changes the object "
                       "pixel size)")
        if isinstance(gridsize, bool) or gridsize not in (1, 2):
            raise fail(self.path, "gridsize", f"is {gridsize!r}", "1 or 2")
        if self.probe is None:
            raise fail(self.path, self.key("probe"), "is missing",
                       "a probe (modes, H, W) to build a dataset from this scan")
        amp, s = self.amplitudes(photon_scale)

        # -- probe: centred zero padding up to (N, N); divided by s for counts ----------
        modes = self.probe
        if modes.shape[1:] != (Np, Np):
            pad = np.zeros((modes.shape[0], Np, Np), np.complex64)
            r0 = Np // 2 - modes.shape[1] // 2
            c0 = Np // 2 - modes.shape[2] // 2
            pad[:, r0:r0 + modes.shape[1], c0:c0 + modes.shape[2]] = modes
            modes = pad
        if self.unit == "counts":
            modes = (modes.astype(np.complex128) / s).astype(np.complex64)
        probe = modes[0].copy() if modes.shape[0] == 1 else modes.copy()

        # -- positions: integer shift onto a canvas ------------------------------------
        centres = self.positions_px
        corners = centres - Np // 2
        lo = corners.min(axis=0)
        shift = np.zeros(2, np.float64)
        for ax in range(2):
            if not (margin <= lo[ax] <= MAX_SPAN_PX):
                shift[ax] = math.ceil(margin - lo[ax])
        centres = centres + shift
        hi = (corners + shift).max(axis=0)
        canvas_w = int(math.ceil(hi[0])) + Np
        canvas_h = int(math.ceil(hi[1])) + Np

        # -- grouping ------------------------------------------------------------------
        if gridsize == 1:
            idx = np.arange(self.n, dtype=np.int64)[:, None]
            offsets = centres[:, None, None, :].astype(np.float32)
            nominal = np.zeros_like(offsets)
        else:
            # lazy: only gridsize > 1 needs the grouping module
            C = gridsize * gridsize
            try:
                idx = np.asarray(group_neighbours(centres, gridsize), dtype=np.int64)
            except ValueError as exc:
                raise fail(self.path, self.key("positions"),
                           f"cannot be grouped ({str(exc).splitlines()[0]})",
                           f"at least {C} positions for gridsize {gridsize}") from None
            offsets, nominal = group_centre_and_offsets(centres, idx)
        diffraction = np.ascontiguousarray(amp[idx])                      # (g, C, N, N)
        object_index = self.scan_index[idx[:, 0]].astype(np.int64)

        # -- metadata ------------------------------------------------------------------
        if self.unit == "counts":
            good = self.patterns if self.bad_pixels is None else \
                self.patterns[:, ~self.bad_pixels]
            mean_counts = float(good.reshape(self.n, -1).astype(np.float64).sum(1).mean())
            norm = (f"amplitude = sqrt(counts) / {s:.6g}; probe / {s:.6g}; mean counts per "
                    f"pattern {mean_counts:.4g}")
        else:
            mean_counts = None
            norm = (f"amplitudes passed through (scale {s:.6g} only labels them); mean "
                    f"sum of amplitude^2 per pattern "
                    f"{float((amp.astype(np.float64) ** 2).sum((1, 2)).mean()):.4g}")
        rms = float(np.sqrt((amp.astype(np.float64) ** 2).mean()))
        norm += f"; amplitude RMS {rms:.4g}"
        if self.bad_pixels is not None:
            norm += f"; {int(self.bad_pixels.sum())} bad pixels set to 0"
        metadata = {
            "format": self.format,
            "source_path": self.path,
            "unit": self.unit,
            "unit_rule": self.unit_rule,
            "scale": s,
            "normalisation": norm,
            "mean_counts_per_pattern": mean_counts,
            "amplitude_rms": rms,
            "canvas_shape": [canvas_h, canvas_w],
            "position_origin_px": [float(shift[0]), float(shift[1])],
            "position_convention": ("(x, y) = (column, row) object pixels; dataset position "
                                    "= file position + position_origin_px; patch centre = "
                                    "pixel N // 2"),
            "n_patterns": self.n,
            "gridsize": int(gridsize),
            "geometry": self.geometry.to_dict(),
            "notes": list(self.notes),
        }
        return PtychoDataset(
            path=self.path,
            diffraction=diffraction,
            coords_nominal=np.ascontiguousarray(nominal),
            coords_offsets=np.ascontiguousarray(offsets),
            probe=probe,
            object_index=object_index,
            pattern_index=np.ascontiguousarray(idx, dtype=np.int64),
            metadata=metadata,
            bad_pixels=None if self.bad_pixels is None else self.bad_pixels.copy(),
        )


# ----------------------------------------------------------------------------------
# Validating constructor
# ----------------------------------------------------------------------------------

def _real(path: str, key: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind not in "fiu":
        raise fail(path, key, f"has dtype {arr.dtype}", "a real integer or float dtype")
    return arr


def _finite(path: str, key: str, arr: np.ndarray) -> None:
    if arr.size and not np.isfinite(arr).all():
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(arr.size - np.isfinite(arr).sum() - n_nan)
        raise fail(path, key, f"contains non-finite values ({n_nan} NaN, {n_inf} Inf)",
                   "finite values only")


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
    :data:`MAX_SPAN_PX`; a probe that is not (modes, Hp, Wp), not finite, or larger than
    the patterns; bad pixels of another shape; a scan index of another length or negative.
    """
    path = str(path)
    k = {"patterns": "patterns", "positions": "positions", "probe": "probe",
         "bad_pixels": "bad_pixels", "scan_index": "scan_index", "object": "object"}
    k.update(keys or {})
    notes = list(notes or [])

    # -- patterns ------------------------------------------------------------------------
    p = np.asarray(patterns)
    kp = k["patterns"]
    if p.ndim != 3:
        raise fail(path, kp, f"has shape {_shape(p)} (ndim {p.ndim})", "(n, H, W)")
    n, H, W = p.shape
    if n == 0:
        raise fail(path, kp, "is empty (0 patterns)", "at least 1 pattern")
    if H != W or H == 0:
        raise fail(path, kp, f"has non-square patterns of shape {_shape(p)}",
                   "square (n, N, N) patterns")
    _real(path, kp, p)
    if p.dtype.kind == "f":
        _finite(path, kp, p)
    if unit_decided is None:
        unit_decided = decide_unit(p, unit, path, kp)
    unit_name, unit_rule = unit_decided

    # -- bad pixels (needed before the sign check) ----------------------------------------
    bp = None
    if bad_pixels is not None:
        kb = k["bad_pixels"]
        b = np.asarray(bad_pixels)
        if b.shape != (H, W):
            raise fail(path, kb, f"has shape {_shape(b)}",
                       f"({H}, {W}) to match the patterns of {kp!r}")
        if b.dtype.kind not in "biuf":
            raise fail(path, kb, f"has dtype {b.dtype}", "bool (True = not measured)")
        if b.dtype.kind == "f":
            _finite(path, kb, b)
        bp = np.ascontiguousarray(b != 0)

    measured = p if bp is None else p[:, ~bp]
    if p.dtype.kind != "u" and measured.size:
        n_neg = int((measured < 0).sum())
        if n_neg:
            raise fail(path, kp, f"has {n_neg} negative values at measured pixels "
                       f"(min {float(measured.min()):.4g})",
                       f"{unit_name} >= 0 (negative values are only allowed at bad pixels)")
    pf = np.ascontiguousarray(p, dtype=np.float32)

    # -- positions -----------------------------------------------------------------------
    kx = k["positions"]
    pos = np.asarray(positions_px)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise fail(path, kx, f"has shape {_shape(pos)}", "(n, 2) probe centres (x, y)")
    if pos.shape[0] != n:
        raise fail(path, kx, f"has {pos.shape[0]} positions",
                   f"{n}, one per pattern of {kp!r}")
    _real(path, kx, pos)
    pos = pos.astype(np.float64)
    _finite(path, kx, pos)
    span = pos.max(axis=0) - pos.min(axis=0)
    if (span > MAX_SPAN_PX).any():
        raise fail(path, kx, f"spans {span[0]:.6g} x {span[1]:.6g} px (x, y)",
                   f"at most {MAX_SPAN_PX} px per axis; patches would fall off any sensible "
                   "object canvas (wrong units?)")

    # -- probe ---------------------------------------------------------------------------
    pr = None
    if probe is not None:
        kq = k["probe"]
        q = np.asarray(probe)
        if q.ndim == 2:
            q = q[None]
        if q.ndim != 3 or 0 in q.shape:
            raise fail(path, kq, f"has shape {_shape(probe)}", "(H, W) or (modes, H, W)")
        if q.dtype.kind not in "fiuc":
            raise fail(path, kq, f"has dtype {q.dtype}", "a complex (or real numeric) dtype")
        if q.shape[1] > H or q.shape[2] > W:
            raise fail(path, kq, f"has shape {_shape(probe)}, larger than the patterns "
                       f"({H}, {W})", f"modes of at most ({H}, {W})")
        pr = np.ascontiguousarray(q, dtype=np.complex64)
        _finite(path, kq, pr)
        if pr.shape[1:] != (H, W):
            notes.append(f"probe {pr.shape[1:]} zero-padded (centred) to the pattern size "
                         f"({H}, {W}) by to_dataset")

    # -- object --------------------------------------------------------------------------
    og = None
    if object_guess is not None:
        ko = k["object"]
        o = np.asarray(object_guess)
        if o.ndim == 3 and o.shape[0] >= 1:
            if o.shape[0] > 1:
                notes.append(f"{ko!r} has {o.shape[0]} layers; kept layer 0")
            o = o[0]
        if o.ndim != 2 or 0 in o.shape:
            raise fail(path, ko, f"has shape {_shape(object_guess)}", "(H, W) or (layers, H, W)")
        if o.dtype.kind not in "fiuc":
            raise fail(path, ko, f"has dtype {o.dtype}", "a complex (or real numeric) dtype")
        og = np.ascontiguousarray(o, dtype=np.complex64)
        _finite(path, ko, og)

    # -- scan index ----------------------------------------------------------------------
    if scan_index is None:
        si = np.zeros(n, np.int64)
    else:
        ks = k["scan_index"]
        si = np.asarray(scan_index)
        if si.shape != (n,):
            raise fail(path, ks, f"has shape {_shape(si)}", f"({n},), one per pattern")
        if si.dtype.kind not in "iu":
            raise fail(path, ks, f"has dtype {si.dtype}", "an integer dtype")
        if (si < 0).any():
            raise fail(path, ks, "has negative values", "indices >= 0")
        si = si.astype(np.int64)

    return RawScan(path=path, format=format, patterns=pf, unit=unit_name, unit_rule=unit_rule,
                   positions_px=np.ascontiguousarray(pos), probe=pr, bad_pixels=bp,
                   object_guess=og, scan_index=si, geometry=geometry or ScanGeometry(),
                   notes=notes, keys=k, stored_scale=stored_scale)
