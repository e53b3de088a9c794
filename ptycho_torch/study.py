"""Steps of a grid-lines study, called in order by the runner script.

prepare data -> train -> batched inference -> stitch test object 0 -> metrics ->
artifacts. Each step takes what it needs as arguments; nothing is global.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptycho.evaluation import align_for_metrics, evaluate_reconstruction
from ptycho.stitching import clip_to_region, grid_region, stitch_by_positions, stitch_grid_tiles
from ptycho_torch.inference import run_torch_inference


@dataclass
class Reconstruction:
    """Stitched test object 0 and its ground truth, clipped to the same region."""

    recon: np.ndarray          # (H, W) complex64
    ground_truth: np.ndarray   # (H, W) complex64
    region: tuple              # (row0, col0, height, width) in the object frame
    inference_time_s: float
    stitch_time_s: float
    n_patterns: int
    infer_batch_size: int      # the batch size that finished (smaller after OOM back-off)


def object0_selection(test: dict) -> np.ndarray:
    """Indices of the patterns that belong to test object 0."""
    idx = np.flatnonzero(np.asarray(test["object_index"]) == 0)
    if idx.size == 0:
        raise ValueError(f"dataset '{test.get('path')}': no patterns of test object 0")
    return idx


def scan_geometry(test: dict, default_stride: int) -> tuple[int, int]:
    """(n_side, stride) of test object 0's regular scan, from metadata or the pattern count."""
    meta = test.get("metadata") or {}
    stride = int(meta.get("stride", default_stride))
    n_side = meta.get("n_side")
    if n_side is None:
        n0 = object0_selection(test).size
        g = int(test["gridsize"])
        side = int(round(np.sqrt(n0))) + (g - 1)
        if (side - g + 1) ** 2 != n0:
            raise ValueError(f"dataset '{test.get('path')}': {n0} patterns of object 0 are not a "
                             "square grid; cannot stitch without 'n_side' in _metadata")
        n_side = side
    return int(n_side), stride


def reconstruct_test_object(model, test: dict, infer_batch_size: int, default_stride: int
                            ) -> Reconstruction:
    """Predict object 0's patterns in batches and stitch them.

    gridsize 1: central stride x stride tiles on the scan grid (the reference recipe).
    gridsize > 1: every channel's central tile shifted to its absolute scan position
    (``coords_offsets + coords_nominal``) and overlaps averaged.
    """
    if "YY_ground_truth" not in test:
        raise ValueError(f"dataset '{test.get('path')}': key 'YY_ground_truth' is missing "
                         "(needed to score the reconstruction)")
    sel = object0_selection(test)
    sub = {k: test[k][sel] for k in ("diffraction", "coords_nominal")}
    sub["probeGuess"] = test["probeGuess"]
    if "input_scale_factor" in test:
        sub["input_scale_factor"] = test["input_scale_factor"]

    class _Cfg:  # only infer_batch_size is read
        pass
    cfg = _Cfg()
    cfg.infer_batch_size = infer_batch_size
    sizes = [int(infer_batch_size)]
    t0 = time.perf_counter()
    patches = run_torch_inference(model, sub, cfg, on_batch_size_change=sizes.append)
    t_inf = time.perf_counter() - t0

    N, g = int(test["N"]), int(test["gridsize"])
    n_side, stride = scan_geometry(test, default_stride)
    region = grid_region(N, stride, n_side)
    gt_full = np.asarray(test["YY_ground_truth"])
    t0 = time.perf_counter()
    if g == 1:
        recon = stitch_grid_tiles(patches[:, 0], n_side, stride)
    else:
        centres = (test["coords_offsets"][sel] + test["coords_nominal"][sel])[:, :, 0, :]
        canvas, _ = stitch_by_positions(patches.reshape(-1, N, N), centres.reshape(-1, 2),
                                        gt_full.shape, crop=stride)
        recon = clip_to_region(canvas, region)
    t_st = time.perf_counter() - t0
    gt = clip_to_region(gt_full, region)
    if gt.shape != recon.shape:
        raise ValueError(f"ground truth region {gt.shape} does not match reconstruction {recon.shape}")
    return Reconstruction(recon=recon.astype(np.complex64), ground_truth=gt.astype(np.complex64),
                          region=region, inference_time_s=t_inf, stitch_time_s=t_st,
                          n_patterns=int(sel.size), infer_batch_size=sizes[-1])


def score(rec: Reconstruction, trim: int = 2) -> tuple[dict, tuple]:
    """Metrics dict and the aligned (amp, amp_gt, phase, phase_gt) images for figures."""
    result = evaluate_reconstruction(rec.recon, rec.ground_truth, trim=trim)
    aligned = align_for_metrics(rec.recon, rec.ground_truth, trim=trim)
    return result, aligned


def save_reconstruction(path: Path, rec: Reconstruction) -> Path:
    from ptycho.artifacts import save_npz_atomic
    return save_npz_atomic(path, reconstruction=rec.recon, amplitude=np.abs(rec.recon),
                           phase=np.angle(rec.recon), ground_truth=rec.ground_truth,
                           region=np.asarray(rec.region, dtype=np.int64))
