"""The cached train / test NPZ files of a grid-lines spec: simulated once per spec and
probe, found again by the spec's hash (:meth:`~ptycho.datagen.grid_lines.GridLinesSpec.cache_key`)
and checked against their own metadata before reuse."""
from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ptycho.datagen.grid_lines import (
    FORMAT_VERSION, GridLinesPaths, GridLinesSpec, make_object, simulate_split, _scan_intensity_sum,
)
from ptycho.geometry.raster import n_groups, n_scan_side
from ptycho.io import METADATA_KEY, save_dataset
from ptycho.probes import make_probe, probe_recipe

__all__ = ["simulate_grid_lines", "probe_digest"]


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
