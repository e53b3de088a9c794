"""Synthetic "grid lines" ptychography dataset (numpy / scipy / scikit-image only).

Pipeline (all vectorized over patches):

1. :func:`make_object` -- random line segments, blurred, centre-cropped; complex64 (S, S).
2. :func:`ptycho.probes.make_probe` -- deterministic defocused circular aperture; complex64 (N, N).
3. :func:`extract_patches` -- the patches of the regular raster scan with a stride
   (:mod:`ptycho.geometry.raster`: positions and gridsize x gridsize neighbour groups).
4. :func:`spec_for` -- the spec of a study config (its simulation section, N, gridsize).
5. :func:`ptycho.forward.diffraction_amplitude` -- ``A = fftshift(|fft2(O*P, norm="ortho")|)``.
6. :func:`ptycho.forward.simulation_scale` / :func:`simulate_split` -- Poisson counts of
   ``(s*A)**2``, stored ``sqrt(counts)/s``.
7. :func:`ptycho.datagen.grid_lines_files.simulate_grid_lines` -- train + test NPZ files,
   cached by spec hash.

Conventions: positions are (x, y) = (column, row) in object pixels; a patch with top-left
(r0, c0) has centre (c0 + N//2, r0 + N//2). In memory groups are channel-first
(n, C, N, N); the NPZ files are channel-last (n, N, N, C) and (n, 1, 2, C).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ptycho.config.choices import SUPPORTED_GRIDSIZE
from ptycho.config.config import ModelConfig, SimulationConfig
from ptycho.config.validation import check_choice, check_int, refuse
from ptycho.geometry.raster import (
    group_coords,
    group_indices,
    n_scan_side,
    scan_top_left,
    stride_rule,
)
from ptycho.forward import poisson_amplitude, probe_modes_of, diffraction_amplitude
from ptycho.probes import make_probe

__all__ = [
    "FORMAT_VERSION",
    "GridLinesSpec",
    "GridLinesPaths",
    "make_object",
    "extract_patches",
    "simulate_split",
    "spec_for",
]

#: Bump when the simulation output changes for an unchanged spec (invalidates caches).
FORMAT_VERSION = 1



# ----------------------------------------------------------------------------------
# Spec
# ----------------------------------------------------------------------------------

def _is_pow2(v: int) -> bool:
    return v > 0 and (v & (v - 1)) == 0


_MODEL_DEFAULTS = ModelConfig()


@dataclass(frozen=True)
class GridLinesSpec(SimulationConfig):
    """Everything that determines a simulated grid-lines dataset: the simulation config
    (:class:`ptycho.config.config.SimulationConfig`, where every field and default is
    declared) plus the pattern size ``N`` and the ``gridsize`` of the model.

    ``N`` must be a power of two with 16 <= N <= object_size; at least ``gridsize`` scan
    positions must fit per side at each stride.
    """

    N: int = _MODEL_DEFAULTS.N
    gridsize: int = _MODEL_DEFAULTS.gridsize

    def __post_init__(self) -> None:
        super().__post_init__()
        o = "GridLinesSpec"
        S = self.object_size
        check_int(o, "N", self.N, 16, S)
        if not _is_pow2(self.N):
            raise refuse(o, "N", f"={self.N} is not a power of two (allowed: 16, 32, 64, ... "
                         f"<= object_size={S})")
        check_choice(o, "gridsize", self.gridsize, SUPPORTED_GRIDSIZE)
        for name in ("train_stride", "test_stride"):
            why = stride_rule(S, self.N, getattr(self, name), self.gridsize)
            if why is not None:
                raise refuse(o, name, why)

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values (JSON-serialisable); float fields as floats, so
        ``nphotons=10**9`` and ``nphotons=1e9`` give the same cache key and metadata."""
        types = typing.get_type_hints(type(self))
        return {f.name: (float(getattr(self, f.name)) if types[f.name] is float
                         else getattr(self, f.name)) for f in dataclasses.fields(self)}

    def cache_key(self) -> str:
        """sha256 hex of the canonical JSON of all fields plus :data:`FORMAT_VERSION`."""
        payload = {"format_version": FORMAT_VERSION, "spec": self.to_dict()}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def spec_for(cfg) -> GridLinesSpec:
    """The simulator's spec of a :class:`ptycho.config.study_config.StudyConfig`: its simulation
    section plus the model's N and gridsize."""
    return GridLinesSpec(N=cfg.model.N, gridsize=cfg.model.gridsize, **cfg.simulation.to_dict())


@dataclass(frozen=True)
class GridLinesPaths:
    """Where :func:`simulate_grid_lines` put (or found) the two splits."""

    train: Path
    test: Path
    cached: bool


# ----------------------------------------------------------------------------------
# Object and probe
# ----------------------------------------------------------------------------------

def make_object(object_size: int, n_lines: int, rng: np.random.Generator,
                with_phase: bool = True) -> np.ndarray:
    """Random grid-lines object, complex64 (S, S).

    ``n_lines`` segments with uniform random integer endpoints are drawn on a binary
    canvas of side 2*S; amplitude ``A = g1 + 2*g5 + 5*g10`` (Gaussian blurs of the float
    canvas with sigma 1, 5, 10), centre-cropped to S x S; phase
    ``pi*tanh((A - max(A)/2) / (3*mean(A)))`` when ``with_phase`` (else 0).
    Consumes ``4*n_lines`` integers from ``rng``.
    """
    from scipy.ndimage import gaussian_filter  # imported here: keeps module import light
    from skimage.draw import line as draw_line
    S = int(object_size)
    L = 2 * S
    canvas = np.zeros((L, L), dtype=np.float64)
    ends = rng.integers(0, L, size=(int(n_lines), 4))
    rr_list, cc_list = [], []
    for r0, c0, r1, c1 in ends:  # loop over lines (not patches); each is tiny
        rr, cc = draw_line(int(r0), int(c0), int(r1), int(c1))
        rr_list.append(rr)
        cc_list.append(cc)
    canvas[np.concatenate(rr_list), np.concatenate(cc_list)] = 1.0
    amp_full = (gaussian_filter(canvas, 1.0) + 2.0 * gaussian_filter(canvas, 5.0)
                + 5.0 * gaussian_filter(canvas, 10.0))
    start = (L - S) // 2
    amp = amp_full[start:start + S, start:start + S]
    if with_phase:
        mean = amp.mean()
        if mean > 0:
            phase = np.pi * np.tanh((amp - amp.max() / 2.0) / (3.0 * mean))
        else:
            phase = np.zeros_like(amp)
        obj = amp * np.exp(1j * phase)
    else:
        obj = amp.astype(np.complex128)
    return obj.astype(np.complex64)






# ----------------------------------------------------------------------------------
# Scan geometry
# ----------------------------------------------------------------------------------

def extract_patches(obj: np.ndarray, N: int, stride: int) -> np.ndarray:
    """All N x N patches of a square object on the stride grid, row-major.

    Returns complex64 (n_side*n_side, N, N); patch ``i`` has the top-left corner
    ``scan_top_left(S, N, stride)[i]``.
    """
    obj = np.asarray(obj)
    if obj.ndim != 2 or obj.shape[0] != obj.shape[1]:
        raise ValueError(f"extract_patches: obj has shape {obj.shape} (expected square (S, S))")
    n = n_scan_side(obj.shape[0], N, stride)
    win = sliding_window_view(obj, (N, N))[::stride, ::stride]
    assert win.shape[:2] == (n, n)
    return np.ascontiguousarray(win.reshape(n * n, N, N), dtype=np.complex64)


# ----------------------------------------------------------------------------------
# Physics
# ----------------------------------------------------------------------------------











def _scan_intensity_sum(obj: np.ndarray, probe: np.ndarray, N: int, stride: int
                        ) -> tuple[float, int]:
    """Sum over the scan of sum_xy |O_patch*P|^2 without materialising patches.

    Equals ``_sum_intensity(extract_patches(obj, N, stride), modes)`` up to rounding;
    computed as a windowed dot product of |O|^2 with sum_k |P_k|^2 (float64).
    """
    w = (np.abs(probe_modes_of(probe, N).astype(np.complex128)) ** 2).sum(axis=0)
    inten = np.abs(np.asarray(obj).astype(np.complex128)) ** 2
    view = sliding_window_view(inten, (N, N))[::stride, ::stride]
    return float(np.einsum("abij,ij->", view, w)), view.shape[0] * view.shape[1]


def _gather_channel_last(src: np.ndarray, gidx: np.ndarray) -> np.ndarray:
    """(P, N, N) per-patch images + (n, C) group indices -> (n, N, N, C)."""
    n, C = gidx.shape
    if C == 1:
        if n == len(src) and np.array_equal(gidx[:, 0], np.arange(n)):
            return src[..., None]
        return src[gidx[:, 0]][..., None]
    out = np.empty((n,) + src.shape[1:] + (C,), dtype=src.dtype)
    for c in range(C):  # loop over channels (<= 4), not patches
        out[..., c] = src[gidx[:, c]]
    return out


def simulate_split(spec: GridLinesSpec, objects: Sequence[np.ndarray], stride: int,
                   scale: float, rng: np.random.Generator,
                   probe: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Simulate every object of one split; channel-LAST arrays ready for the NPZ.

    Noise is drawn per scan position (a patch shared by several groups at gridsize 2
    is one measurement), object by object in order, from ``rng``.

    Returns:
        ``diffraction`` (n, N, N, C) float32 = sqrt(Poisson((s*A)^2))/s;
        ``Y_I`` (n, N, N, C) float32 = |O*P| / norm_Y_I; ``Y_phi`` (n, N, N, C) float32 =
        angle(O); ``coords_nominal``, ``coords_offsets`` (n, 1, 2, C) float32 (x, y);
        ``probeGuess`` (N, N) (or (K, N, N) modes) complex64; ``norm_Y_I`` 0-d float32
        (mean over patches of the per-patch max |O*P|, modes added in intensity);
        ``object_index`` (n,) int32 (object 0's groups first); ``pattern_index`` (n, C)
        int64 (which scan position's pattern each patch is, numbered over all objects).

    ``probe``: the probe to simulate with (default: :func:`make_probe` of the spec).
    """
    N, g = spec.N, spec.gridsize
    if probe is None:
        probe = make_probe(N, spec.probe_pupil_radius, spec.probe_defocus)
    modes = probe_modes_of(probe, N)
    S = spec.object_size
    n_side = n_scan_side(S, N, stride)
    tl = scan_top_left(S, N, stride)
    gidx = group_indices(n_side, g)
    offsets, nominal = group_coords(tl, gidx, N)
    offsets = np.ascontiguousarray(offsets.transpose(0, 2, 1)[:, None])     # (n,1,2,C)
    nominal = np.ascontiguousarray(nominal.transpose(0, 2, 1)[:, None])

    objects = list(objects)
    k = len(objects)
    if k == 0:
        raise ValueError("simulate_split: no objects given (expected at least one)")
    n_per, C = gidx.shape
    shape = (k * n_per, N, N, C)
    # Preallocated outputs filled object by object: no concatenation copies.
    diffraction = np.empty(shape, np.float32)
    Y_I = np.empty(shape, np.float32)
    Y_phi = np.empty(shape, np.float32)
    maxes = []
    for j, obj in enumerate(objects):
        obj = np.asarray(obj, dtype=np.complex64)
        if obj.shape != (S, S):
            raise ValueError(f"simulate_split: object has shape {obj.shape} "
                             f"(expected ({S}, {S}) = spec.object_size)")
        rows = slice(j * n_per, (j + 1) * n_per)
        patches = extract_patches(obj, N, stride)                            # (P,N,N)
        amp = diffraction_amplitude(patches, probe)
        diffraction[rows] = _gather_channel_last(poisson_amplitude(amp, scale, rng), gidx)
        del amp
        exit_amp = np.sqrt((np.abs(patches[:, None] * modes[None]) ** 2).sum(axis=1))
        maxes.append(exit_amp.reshape(len(patches), -1).max(axis=1))
        Y_I[rows] = _gather_channel_last(exit_amp, gidx)
        del exit_amp
        Y_phi[rows] = _gather_channel_last(np.angle(patches).astype(np.float32), gidx)
        del patches

    norm = np.float32(np.concatenate(maxes).astype(np.float64).mean())
    Y_I /= norm
    return {
        "diffraction": diffraction,
        "Y_I": Y_I,
        "Y_phi": Y_phi,
        "coords_nominal": np.tile(nominal, (k, 1, 1, 1)),
        "coords_offsets": np.tile(offsets, (k, 1, 1, 1)),
        "probeGuess": probe,
        "norm_Y_I": np.array(norm, dtype=np.float32),
        "object_index": np.repeat(np.arange(k, dtype=np.int32), n_per),
        "pattern_index": (gidx[None].astype(np.int64)
                          + n_side * n_side * np.arange(k, dtype=np.int64)[:, None, None]
                          ).reshape(k * n_per, C),
    }


# ----------------------------------------------------------------------------------
# Top level: cached train / test files
# ----------------------------------------------------------------------------------









