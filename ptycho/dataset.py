"""The in-memory dataset record: one split of a ptychography scan, channel-first.

Every reader (``ptycho.io`` for this project's NPZ, ``ptycho.formats`` for the field's
files) returns a :class:`PtychoDataset`; every consumer (training, inference, stitching,
the iterative baseline, figures) reads its typed fields. The on-disk NPZ keys are
documented in ``ptycho.io``; this record only holds arrays that passed validation.

Conventions (stated once, here):

- Patterns are diffraction **amplitudes** (``sqrt(counts) / photon_scale``), float32,
  DC at the centre of the (N, N) frame.
- Positions are ``(x, y) = (column, row)`` in object pixels, sub-pixel allowed.
  ``coords_offsets`` is each group's centre and ``coords_nominal`` each patch's offset
  from it (zeros at gridsize 1); a patch's centre is their sum (:attr:`centres`).
- A patch of size N centred at ``c`` covers object pixels ``c - N/2 .. c + N/2 - 1``
  (the centre is pixel ``N // 2`` of the patch, like the FFT's DC).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True, eq=False)
class PtychoDataset:
    """One validated split (train or test) of a scan, channel-first.

    ``diffraction`` (n, C, N, N) float32 amplitudes >= 0; ``coords_nominal`` and
    ``coords_offsets`` (n, C, 1, 2) float32 (x, y); ``probe`` (N, N) complex64, or
    (modes, N, N) for several incoherent modes; ``object_index`` (n,) int64 (which object
    or scan each group belongs to). Optional: ``ground_truth`` (H, W) complex64 of object
    0, ``ground_truth_all`` (K, H, W), labels ``Y_I`` / ``Y_phi`` (n, C, N, N),
    ``bad_pixels`` (N, N) bool (True where the detector did not measure), ``metadata``
    (the file's JSON metadata), ``pattern_index`` (n, C) int64 (which measured pattern of
    the scan each patch is: at gridsize > 1 one pattern sits in several groups; see
    :meth:`pattern_ids`).
    """

    path: str
    diffraction: np.ndarray
    coords_nominal: np.ndarray
    coords_offsets: np.ndarray
    probe: np.ndarray
    object_index: np.ndarray
    norm_Y_I: float = 1.0
    metadata: dict = field(default_factory=dict)
    ground_truth: np.ndarray | None = None
    ground_truth_all: np.ndarray | None = None
    Y_I: np.ndarray | None = None
    Y_phi: np.ndarray | None = None
    bad_pixels: np.ndarray | None = None
    pattern_index: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of groups (samples)."""
        return int(self.diffraction.shape[0])

    @property
    def channels(self) -> int:
        return int(self.diffraction.shape[1])

    @property
    def N(self) -> int:  # noqa: N802 - the field's name for the pattern size
        return int(self.diffraction.shape[-1])

    @property
    def gridsize(self) -> int:
        return int(round(np.sqrt(self.channels)))

    @property
    def has_ground_truth(self) -> bool:
        return self.ground_truth is not None

    @property
    def centres(self) -> np.ndarray:
        """(n, C, 2) float32 absolute patch centres (x, y) in object pixels."""
        return (self.coords_offsets + self.coords_nominal)[:, :, 0, :]

    @property
    def photon_scale(self) -> float:
        """The simulation scale s (counts = (s A)^2) from the metadata; 1.0 if absent."""
        return self.metadata.get("scale", 1.0)

    @property
    def probe_modes(self) -> np.ndarray:
        """The probe as (modes, N, N) complex64."""
        return self.probe[None] if self.probe.ndim == 2 else self.probe

    def select(self, idx) -> PtychoDataset:
        """The same dataset restricted to groups ``idx`` (per-pattern arrays indexed; the
        pattern ids of the whole dataset are kept, so a subset's ids match its parent's)."""
        idx = np.asarray(idx)

        def pick(a):
            return None if a is None else a[idx]
        return replace(self, diffraction=self.diffraction[idx],
                       coords_nominal=self.coords_nominal[idx],
                       coords_offsets=self.coords_offsets[idx],
                       object_index=self.object_index[idx], Y_I=pick(self.Y_I),
                       Y_phi=pick(self.Y_phi), pattern_index=self.pattern_ids()[idx])

    def pattern_ids(self) -> np.ndarray:
        """(n, C) int64: the measured pattern each patch is; equal ids are one measurement
        shared by several groups. ``pattern_index`` when the reader or simulator gave it;
        else at gridsize 1 every patch is its own pattern, and at gridsize > 1 (a file
        written without the key) patches whose centres agree to 1e-3 px are one pattern.
        Two patterns are never merged because their centres round to the same pixel."""
        if self.pattern_index is not None:
            return np.asarray(self.pattern_index, dtype=np.int64)
        if self.channels == 1:
            return np.arange(self.n, dtype=np.int64)[:, None]
        key = np.round(self.centres.reshape(-1, 2).astype(np.float64) * 1e3).astype(np.int64)
        _, inverse = np.unique(key, axis=0, return_inverse=True)
        return inverse.reshape(self.n, self.channels).astype(np.int64)

    def object_selection(self, index: int = 0) -> np.ndarray:
        """Indices of the groups of object (or scan) ``index``; ValueError if none."""
        idx = np.flatnonzero(self.object_index == index)
        if idx.size == 0:
            raise ValueError(f"dataset '{self.path}': no patterns of object {index} "
                             "(key 'object_index')")
        return idx
