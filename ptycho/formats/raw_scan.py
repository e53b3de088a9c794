"""The raw-scan record every format reader returns, and its conversion to a dataset.

A :class:`RawScan` holds one ptychographic scan as the file stored it, after validation
(:func:`ptycho.formats.validation.make_raw_scan` builds it):

- ``patterns`` (n, H, W) float32, exactly the stored values (photon **counts** or
  diffraction **amplitudes**; ``unit`` says which and ``unit_rule`` why, by the rule of
  :mod:`ptycho.formats.units`), DC at the centre.
- ``positions_px`` (n, 2) float64 probe centres ``(x, y) = (column, row)`` in object
  pixels; a patch of size N centred at ``c`` covers pixels ``c - N/2 .. c + N/2 - 1``
  (centre = pixel ``N // 2`` of the patch, as in :mod:`ptycho.dataset`).
- ``probe`` (modes, Hp, Wp) complex64 or None, ``bad_pixels`` (H, W) bool (True = not
  measured) or None, ``object_guess`` (Ho, Wo) complex64 or None (layer 0 of the file's
  object), ``scan_index`` (n,) int64 (which scan / object each pattern belongs to),
  ``geometry`` (:class:`ptycho.formats.geometry.ScanGeometry`, physical units, every field
  optional) and ``notes`` (what the reader skipped or changed, one sentence each).

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
from dataclasses import dataclass, field

import numpy as np

from ptycho.config.choices import SUPPORTED_N
from ptycho.dataset import PtychoDataset
from ptycho.dataset_validation import pattern_size_advice
from ptycho.formats.checks import fail
from ptycho.formats.geometry import ScanGeometry
from ptycho.geometry.grouping import group_centre_and_offsets, group_neighbours

__all__ = ["MAX_SPAN_PX", "RawScan"]

#: Largest accepted extent of the probe positions along either axis, in object pixels.
MAX_SPAN_PX = 65536

_POSITION_CONVENTION = ("(x, y) = (column, row) object pixels; dataset position = file "
                        "position + position_origin_px; patch centre = pixel N // 2")


@dataclass(frozen=True, eq=False)
class RawScan:
    """One validated scan as stored in a file (see the module docstring).

    Build it with :func:`ptycho.formats.validation.make_raw_scan` (which validates);
    ``keys`` maps the roles ``patterns``, ``positions``, ``probe``, ``bad_pixels``,
    ``scan_index``, ``object`` to the names the file uses, so later refusals name the
    file's own keys.
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
                   N: int | None = None, *, margin: int = 0, k_nearest: int = 0,
                   groups_per_position: int = 1):
        """Convert to a :class:`ptycho.dataset.PtychoDataset` (channel-first).

        Args:
            gridsize: 1 (one pattern per sample) or 2 (groups of 4 neighbours from
                :func:`ptycho.geometry.grouping.group_neighbours`).
            photon_scale: ``s`` in ``amplitude = sqrt(counts) / s`` (default: the file's
                own scale when it records one, else 1.0).
            N: expected pattern size; a different size is refused (cropping or binning
                the detector would change the object pixel size, so it is not done here).
            margin: the smallest patch corner lands at >= ``margin`` pixels.
            k_nearest, groups_per_position: gridsize 2 only (defaults 0 and 1: one group
                per position, itself and its C-1 nearest): ``groups_per_position`` groups
                per position, each itself and C-1 of its ``k_nearest`` nearest, drawn with
                seed 0 (``group_neighbours``; ``k_nearest`` 0 means C-1).

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
        self._check_request(gridsize, N)
        amp, s = self.amplitudes(photon_scale)
        probe = self._dataset_probe(s)
        centres, shift, canvas = _on_canvas(self.positions_px, self.N, margin)
        idx, offsets, nominal = self._groups(centres, gridsize, k_nearest, groups_per_position)
        return PtychoDataset(
            path=self.path,
            diffraction=np.ascontiguousarray(amp[idx]),                   # (g, C, N, N)
            coords_nominal=np.ascontiguousarray(nominal),
            coords_offsets=np.ascontiguousarray(offsets),
            probe=probe,
            object_index=self.scan_index[idx[:, 0]].astype(np.int64),
            pattern_index=np.ascontiguousarray(idx, dtype=np.int64),
            metadata=self._metadata(amp, s, gridsize, shift, canvas),
            bad_pixels=None if self.bad_pixels is None else self.bad_pixels.copy(),
        )

    # -- the steps of to_dataset -------------------------------------------------------
    def _check_request(self, gridsize: int, N: int | None) -> None:
        """Refuse another pattern size than ``N``, a gridsize other than 1 or 2, no probe."""
        Np = self.N
        if N is not None and int(N) != Np:
            advice = pattern_size_advice(Np)
            if Np in SUPPORTED_N:
                advice += (", or crop or bin the detector before reading (either changes the "
                           "object pixel size)")
            raise fail(self.path, self.key("patterns"), f"has pattern size N = {Np}",
                       f"N = {int(N)}, the study's --N; {advice}")
        if isinstance(gridsize, bool) or gridsize not in (1, 2):
            raise fail(self.path, "gridsize", f"is {gridsize!r}", "1 or 2")
        self.require_probe()

    def require_probe(self) -> np.ndarray:
        """The probe (modes, H, W), or the one-line refusal of a scan without one."""
        if self.probe is None:
            raise fail(self.path, self.key("probe"), "is missing",
                       "a probe (modes, H, W) to build a dataset from this scan")
        return self.probe

    def _dataset_probe(self, s: float) -> np.ndarray:
        """The probe zero-padded (centred) up to (N, N), divided by ``s`` for counts;
        (N, N) for one mode, else (modes, N, N)."""
        Np = self.N
        modes = self.require_probe()
        if modes.shape[1:] != (Np, Np):
            pad = np.zeros((modes.shape[0], Np, Np), np.complex64)
            r0 = Np // 2 - modes.shape[1] // 2
            c0 = Np // 2 - modes.shape[2] // 2
            pad[:, r0:r0 + modes.shape[1], c0:c0 + modes.shape[2]] = modes
            modes = pad
        if self.unit == "counts":
            modes = (modes.astype(np.complex128) / s).astype(np.complex64)
        return modes[0].copy() if modes.shape[0] == 1 else modes.copy()

    def _groups(self, centres: np.ndarray, gridsize: int, k_nearest: int = 0, per: int = 1):
        """``(idx (g, C), coords_offsets, coords_nominal)`` for ``gridsize`` (``k_nearest``,
        ``per``: the draw of :func:`ptycho.geometry.grouping.group_neighbours`; 0 and 1 at
        gridsize 1)."""
        if gridsize == 1 and (k_nearest != 0 or per != 1):
            raise fail(self.path, "gridsize", "is 1", "gridsize 2 for k_nearest="
                       f"{k_nearest}, groups_per_position={per} (allowed at gridsize 1: 0 and 1)")
        if gridsize == 1:
            idx = np.arange(self.n, dtype=np.int64)[:, None]
            offsets = centres[:, None, None, :].astype(np.float32)
            return idx, offsets, np.zeros_like(offsets)
        C = gridsize * gridsize
        try:
            idx = np.asarray(group_neighbours(centres, gridsize, k_nearest=k_nearest or None,
                                              groups_per_position=per), dtype=np.int64)
        except ValueError as exc:
            raise fail(self.path, self.key("positions"),
                       f"cannot be grouped ({str(exc).splitlines()[0]})",
                       f"at least {C} positions for gridsize {gridsize}") from None
        offsets, nominal = group_centre_and_offsets(centres, idx)
        return idx, offsets, nominal

    def _normalisation(self, amp: np.ndarray, s: float) -> tuple[str, float | None, float]:
        """``(normalisation text, mean counts per pattern or None, amplitude RMS)``."""
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
        return norm, mean_counts, rms

    def _metadata(self, amp: np.ndarray, s: float, gridsize: int, shift: np.ndarray,
                  canvas: tuple[int, int]) -> dict:
        """The dataset's metadata (keys listed in :meth:`to_dataset`)."""
        norm, mean_counts, rms = self._normalisation(amp, s)
        return {
            "format": self.format,
            "source_path": self.path,
            "unit": self.unit,
            "unit_rule": self.unit_rule,
            "scale": s,
            "normalisation": norm,
            "mean_counts_per_pattern": mean_counts,
            "amplitude_rms": rms,
            "canvas_shape": [canvas[0], canvas[1]],
            "position_origin_px": [float(shift[0]), float(shift[1])],
            "position_convention": _POSITION_CONVENTION,
            "n_patterns": self.n,
            "gridsize": int(gridsize),
            "geometry": self.geometry.to_dict(),
            "notes": list(self.notes),
        }


def _on_canvas(positions_px: np.ndarray, N: int, margin: int
              ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Positions moved onto a canvas by the rule of the module docstring: returns the
    moved centres, the integer shift ``(dx, dy)`` and the canvas shape ``(H, W)``."""
    corners = positions_px - N // 2
    lo = corners.min(axis=0)
    shift = np.zeros(2, np.float64)
    for ax in range(2):
        if not (margin <= lo[ax] <= MAX_SPAN_PX):
            shift[ax] = math.ceil(margin - lo[ax])
    hi = (corners + shift).max(axis=0)
    canvas_w = int(math.ceil(hi[0])) + N
    canvas_h = int(math.ceil(hi[1])) + N
    return positions_px + shift, shift, (canvas_h, canvas_w)
