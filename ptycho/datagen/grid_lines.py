"""Synthetic "grid lines" ptychography dataset (numpy / scipy / scikit-image only).

Pipeline (all vectorized over patches):

1. :func:`make_object` -- random line segments, blurred, centre-cropped; complex64 (S, S).
2. :func:`make_probe` -- deterministic defocused circular aperture; complex64 (N, N).
3. :func:`extract_patches` -- the patches of the regular raster scan with a stride
   (:mod:`ptycho.geometry.raster`: positions and gridsize x gridsize neighbour groups).
4. :func:`spec_for` -- the spec of a study config (its simulation section, N, gridsize).
5. :func:`diffraction_amplitude` -- ``A = fftshift(|fft2(O*P, norm="ortho")|)``.
6. :func:`simulation_scale` / :func:`simulate_split` -- Poisson counts of ``(s*A)**2``,
   stored ``sqrt(counts)/s``.
7. :func:`simulate_grid_lines` -- train + test NPZ files, cached by spec hash.

Conventions: positions are (x, y) = (column, row) in object pixels; a patch with top-left
(r0, c0) has centre (c0 + N//2, r0 + N//2). In memory groups are channel-first
(n, C, N, N); the NPZ files are channel-last (n, N, N, C) and (n, 1, 2, C).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import typing
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import scipy.fft as sfft
from numpy.lib.stride_tricks import sliding_window_view

from ptycho.config.config import SUPPORTED_GRIDSIZE, ModelConfig, SimulationConfig
from ptycho.config.validation import check_choice, check_int, refuse
from ptycho.geometry.raster import (
    group_coords,
    group_indices,
    n_groups,
    n_scan_side,
    scan_top_left,
    stride_rule,
)
from ptycho.io import METADATA_KEY, save_dataset

__all__ = [
    "FORMAT_VERSION",
    "GridLinesSpec",
    "GridLinesPaths",
    "make_object",
    "make_probe",
    "probe_recipe",
    "extract_patches",
    "diffraction_amplitude",
    "simulation_scale",
    "simulate_split",
    "simulate_grid_lines",
    "spec_for",
]

#: Bump when the simulation output changes for an unchanged spec (invalidates caches).
FORMAT_VERSION = 1

# Complex elements per FFT chunk (8 Mi complex64 = 64 MiB).
_CHUNK_ELEMS = 1 << 23
# Elements per Poisson noise chunk (fixed: the noise depends on it; see _poisson_amplitude).
_NOISE_CHUNK = 1 << 22


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
    """The simulator's spec of a :class:`ptycho.config.config.StudyConfig`: its simulation
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


def make_probe(N: int, pupil_radius: float = 0.1875, defocus: float = 14.0) -> np.ndarray:
    """Deterministic defocused circular-aperture probe, complex64 (N, N).

    In k-space (centred grid, DC at index N//2) the pupil is a disk of radius
    ``R = pupil_radius*N`` pixels carrying the quadratic phase ``defocus*(k/R)**2``. The
    probe is ``fftshift(ifft2(ifftshift(pupil), norm="ortho"))``, so it is centred at
    pixel (N//2, N//2) (symmetric about it), normalized to ``max |P| = 1``.
    """
    N = int(N)
    R = float(pupil_radius) * N
    k = np.arange(N) - N // 2
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    inside = k2 <= R * R
    pupil = np.where(inside, np.exp(1j * float(defocus) * k2 / (R * R)), 0.0)
    probe = sfft.fftshift(sfft.ifft2(sfft.ifftshift(pupil), norm="ortho"))
    probe = probe / np.abs(probe).max()
    return probe.astype(np.complex64)


def probe_recipe(N: int, pupil_radius: float = 0.1875, defocus: float = 14.0) -> dict:
    """JSON-able description of :func:`make_probe` with these arguments (for metadata)."""
    return {
        "kind": "defocused_circular_aperture",
        "N": int(N),
        "pupil_radius_fraction_of_N": float(pupil_radius),
        "pupil_radius_px": float(pupil_radius) * int(N),
        "defocus_rad_at_pupil_edge": float(defocus),
        "construction": "pupil = disk(k <= R) * exp(i*defocus*(k/R)^2) on a centred k-grid; "
                        "P = fftshift(ifft2(ifftshift(pupil), norm='ortho'))",
        "normalization": "max|P| = 1",
        "centre_px": [int(N) // 2, int(N) // 2],
    }


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

def _probe_modes(probe: np.ndarray, N: int) -> np.ndarray:
    p = np.asarray(probe, dtype=np.complex64)
    if p.ndim == 2:
        p = p[None]
    if p.ndim != 3 or p.shape[1:] != (N, N):
        raise ValueError(f"probe has shape {np.shape(probe)} (expected ({N}, {N}) or "
                         f"(modes, {N}, {N}) to match the patches)")
    return p


def diffraction_amplitude(obj_patches: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """Far-field amplitude ``fftshift(|fft2(O*P, norm="ortho")|)`` over the last two axes.

    Args:
        obj_patches: complex (..., N, N).
        probe: complex (N, N), or (K, N, N) modes summed incoherently in intensity.

    Returns:
        float32 with the shape of ``obj_patches``. Computed in chunks (about 64 MiB
        of complex64 each) with a multithreaded FFT.
    """
    x = np.asarray(obj_patches)
    N = x.shape[-1]
    if x.ndim < 2 or x.shape[-2] != N:
        raise ValueError(f"obj_patches has shape {x.shape} (expected (..., N, N))")
    modes = _probe_modes(probe, N)
    K = modes.shape[0]
    flat = x.reshape(-1, N, N)
    out = np.empty(flat.shape, dtype=np.float32)
    chunk = max(1, _CHUNK_ELEMS // (N * N * K))
    workers = os.cpu_count() or 1
    for s in range(0, flat.shape[0], chunk):
        psi = flat[s:s + chunk, None].astype(np.complex64, copy=False) * modes  # (b,K,N,N)
        f = sfft.fft2(psi, norm="ortho", workers=workers, overwrite_x=True)
        if K == 1:
            a = np.abs(f[:, 0])
        else:
            a = np.sqrt((f.real ** 2 + f.imag ** 2).sum(axis=1))
        out[s:s + chunk] = sfft.fftshift(a, axes=(-2, -1))
    return out.reshape(x.shape)


def _sum_intensity(patches: np.ndarray, modes: np.ndarray) -> tuple[float, int]:
    """Sum over patches of sum_xy sum_k |O*P_k|^2 (float64) and the patch count."""
    p = np.asarray(patches)
    N = p.shape[-1]
    flat = p.reshape(-1, N, N)
    w = (np.abs(modes) ** 2).sum(axis=0).astype(np.float64)        # (N, N)
    chunk = max(1, _CHUNK_ELEMS // (N * N))
    total = 0.0
    for s in range(0, flat.shape[0], chunk):
        blk = flat[s:s + chunk]
        total += float(np.einsum("bij,ij->", (blk.real.astype(np.float64) ** 2
                                               + blk.imag.astype(np.float64) ** 2), w))
    return total, flat.shape[0]


def simulation_scale(obj_patches: np.ndarray | Sequence[np.ndarray], probe: np.ndarray,
                     nphotons: float) -> float:
    """``s = sqrt(nphotons / mean_patches(sum_xy |O*P|^2))``.

    Args:
        obj_patches: complex (..., N, N), or a list / iterable (e.g. a generator, to bound
            memory) of such arrays; the mean is over all their patches together.
        probe: (N, N) or (K, N, N) (mode intensities summed).
        nphotons: target mean total counts per pattern.
    """
    arrays = [obj_patches] if isinstance(obj_patches, np.ndarray) else obj_patches
    total, count = 0.0, 0
    for a in arrays:  # may be a generator: one array alive at a time
        a = np.asarray(a)
        t, c = _sum_intensity(a, _probe_modes(probe, a.shape[-1]))
        total += t
        count += c
    if count == 0:
        raise ValueError("simulation_scale: no patches given (expected at least one patch)")
    mean = total / count
    if not mean > 0:
        raise ValueError(f"simulation_scale: mean patch intensity is {mean!r} "
                         "(expected > 0; object or probe is all zeros)")
    return float(np.sqrt(float(nphotons) / mean))


def _poisson_amplitude(amp: np.ndarray, scale: float, rng: np.random.Generator
                       ) -> np.ndarray:
    """``sqrt(Poisson((s*A)^2)) / s`` as float32, same shape as ``amp``.

    The flattened array is cut into fixed chunks of ``_NOISE_CHUNK`` elements; chunk i
    is drawn by ``numpy.random.default_rng(seed_i).poisson`` where the seeds are drawn
    from ``rng`` first (one integer per chunk). numpy releases the GIL while sampling, so
    chunks run on a thread pool; the result depends only on ``rng``'s state, never on
    the number of threads.
    """
    flat = amp.reshape(-1)
    out = np.empty(flat.shape, np.float32)
    starts = range(0, flat.size, _NOISE_CHUNK)
    seeds = rng.integers(0, 2 ** 63, size=len(starts), dtype=np.int64)
    s = float(scale)

    def work(i: int) -> None:
        a = starts[i]
        lam = flat[a:a + _NOISE_CHUNK].astype(np.float64)
        lam *= s
        lam *= lam
        counts = np.random.default_rng(int(seeds[i])).poisson(lam)
        out[a:a + _NOISE_CHUNK] = np.sqrt(counts, dtype=np.float64) / s

    n_threads = min(os.cpu_count() or 1, len(starts))
    if n_threads <= 1:
        for i in range(len(starts)):
            work(i)
    else:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            list(pool.map(work, range(len(starts))))
    return out.reshape(amp.shape)


def _scan_intensity_sum(obj: np.ndarray, probe: np.ndarray, N: int, stride: int
                        ) -> tuple[float, int]:
    """Sum over the scan of sum_xy |O_patch*P|^2 without materialising patches.

    Equals ``_sum_intensity(extract_patches(obj, N, stride), modes)`` up to rounding;
    computed as a windowed dot product of |O|^2 with sum_k |P_k|^2 (float64).
    """
    w = (np.abs(_probe_modes(probe, N).astype(np.complex128)) ** 2).sum(axis=0)
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
    modes = _probe_modes(probe, N)
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
        diffraction[rows] = _gather_channel_last(_poisson_amplitude(amp, scale, rng), gidx)
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

def _read_metadata(path: Path) -> dict | None:
    """The ``_metadata`` JSON of an NPZ, or None if missing / unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if METADATA_KEY not in z.files:
                return None
            meta = json.loads(str(z[METADATA_KEY].reshape(()).item()))
    except Exception:  # noqa: BLE001 - any problem means "not a valid cache entry"
        return None
    return meta if isinstance(meta, dict) else None


def _metadata_matches(meta: dict | None, spec: GridLinesSpec, split: str,
                      digest: str | None = None) -> bool:
    if meta is None or meta.get("probe_digest") != digest:
        return False
    if meta.get("format_version") != FORMAT_VERSION or meta.get("split") != split:
        return False
    return all(meta.get(k) == v for k, v in spec.to_dict().items())


def probe_digest(probe: np.ndarray) -> str:
    """sha256 hex of a probe's complex64 bytes and shape (keys the cache of a given probe)."""
    p = np.ascontiguousarray(np.asarray(probe, dtype=np.complex64))
    return hashlib.sha256(repr(p.shape).encode() + p.tobytes()).hexdigest()


def simulate_grid_lines(spec: GridLinesSpec, cache_dir: str | os.PathLike,
                        probe: np.ndarray | None = None) -> GridLinesPaths:
    """Simulate (or reuse) ``cache_dir/<cache_key[:16]>/{train,test}.npz``.

    Training objects come from ``default_rng(spec.train_seed)`` (all objects in
    sequence, then the training noise); test objects and noise from
    ``default_rng(spec.test_seed)``. The scale s is computed on all training patches and
    reused for the test split. The test file also has ``YY_ground_truth`` (H, W, 1)
    (test object 0) and ``YY_ground_truth_all`` (n_test_objects, H, W), complex64.
    Both files are reused when present and their ``_metadata`` matches ``spec``.

    ``probe`` ((N, N) or (K, N, N) complex, e.g. from a measured scan) replaces the
    synthetic aperture; its digest joins the cache key and the metadata.
    """
    digest = None if probe is None else probe_digest(probe)
    key = spec.cache_key() if digest is None else hashlib.sha256(
        (spec.cache_key() + digest).encode()).hexdigest()
    out_dir = Path(cache_dir) / key[:16]
    train_path, test_path = out_dir / "train.npz", out_dir / "test.npz"
    if (train_path.is_file() and test_path.is_file()
            and _metadata_matches(_read_metadata(train_path), spec, "train", digest)
            and _metadata_matches(_read_metadata(test_path), spec, "test", digest)):
        return GridLinesPaths(train=train_path, test=test_path, cached=True)

    t0 = time.perf_counter()
    N = spec.N
    if probe is None:
        probe = make_probe(N, spec.probe_pupil_radius, spec.probe_defocus)
    else:
        probe = np.asarray(probe, dtype=np.complex64)

    rng_train = np.random.default_rng(spec.train_seed)
    train_objs = [make_object(spec.object_size, spec.n_lines, rng_train, spec.with_phase)
                  for _ in range(spec.n_train_objects)]
    # Same value as simulation_scale(extract_patches(...) of every object), cheaper.
    sums = [_scan_intensity_sum(o, probe, N, spec.train_stride) for o in train_objs]
    mean_intensity = sum(t for t, _ in sums) / sum(c for _, c in sums)
    scale = float(np.sqrt(spec.nphotons / mean_intensity))
    train = simulate_split(spec, train_objs, spec.train_stride, scale, rng_train, probe)
    del train_objs
    train_secs = time.perf_counter() - t0
    save_dataset(train_path, train,
                 _split_metadata(spec, "train", spec.train_stride, scale, train, train_secs,
                                 digest))
    del train

    t1 = time.perf_counter()
    rng_test = np.random.default_rng(spec.test_seed)
    test_objs = np.stack([make_object(spec.object_size, spec.n_lines, rng_test, spec.with_phase)
                          for _ in range(spec.n_test_objects)])
    test = simulate_split(spec, list(test_objs), spec.test_stride, scale, rng_test, probe)
    test["YY_ground_truth"] = test_objs[0][..., None]
    test["YY_ground_truth_all"] = test_objs
    save_dataset(test_path, test,
                 _split_metadata(spec, "test", spec.test_stride, scale, test,
                                 time.perf_counter() - t1, digest))
    return GridLinesPaths(train=train_path, test=test_path, cached=False)


def _split_metadata(spec: GridLinesSpec, split: str, stride: int, scale: float,
                    arrays: dict, seconds: float, digest: str | None = None) -> dict:
    n_side = n_scan_side(spec.object_size, spec.N, stride)
    meta = {
        "format_version": FORMAT_VERSION,
        "generator": "ptycho.datagen.grid_lines",
        "split": split,
        "stride": int(stride),
        "n_side": int(n_side),
        "n_groups_per_object": n_groups(spec.object_size, spec.N, stride, spec.gridsize),
        "n_objects": spec.n_train_objects if split == "train" else spec.n_test_objects,
        "n_patterns": int(arrays["diffraction"].shape[0]),
        "channels": spec.gridsize ** 2,
        "scale": float(scale),
        "scale_source": "training patches (reused for test)",
        "norm_Y_I": float(arrays["norm_Y_I"]),
        "probe": (probe_recipe(spec.N, spec.probe_pupil_radius, spec.probe_defocus)
                  if digest is None else {"source": "user file (--probe-npz)",
                                          "shape": list(np.shape(arrays["probeGuess"]))}),
        "probe_digest": digest,
        "coords_convention": "(x, y) = (column, row) object pixels; offsets = group centre, "
                             "nominal = patch centre - group centre",
        "layout": "channel-last on disk: (n, N, N, C), coords (n, 1, 2, C)",
        "cache_key": spec.cache_key(),
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "generation_seconds": round(float(seconds), 3),
    }
    meta.update(spec.to_dict())   # every spec field at top level (N, gridsize, seeds, ...)
    return meta
