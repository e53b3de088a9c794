"""The reconstruction record of a scan and how it is scored, shared by every study row.

:class:`Reconstruction` is what a network (batched ``forward_predict``, then stitching) or
an iterative engine gives for test object 0: the object clipped to the one scored region
(:func:`scored_region`), the ground truth clipped alike, the raw patches, the whole
stitched canvas and the timings. :func:`score` applies the ground-truth metrics;
:func:`save_reconstruction` writes ``recon.npz``. ``ptycho_torch.pipeline.study`` (the pipeline),
the Pty-chi adapter and the studies build on it; it imports none of them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptycho.artifacts import save_npz_atomic
from ptycho.config.config import InferenceConfig
from ptycho.config.validation import StudyError
from ptycho.dataset import PtychoDataset
from ptycho.evaluation import align_for_metrics, evaluate_reconstruction
from ptycho.study_metrics import StudyMetrics
from ptycho.stitching import (
    StitchOptions,
    canvas_for_positions,
    clip_to_region,
    grid_region,
    probe_weights,
    scan_region,
    stitch,
)


@dataclass
class Reconstruction:
    """A stitched object and what it took. With ground truth, ``recon`` and
    ``ground_truth`` are clipped to the same ``region`` (row0, col0, height, width) of the
    object frame; without, ``recon`` is the covered part of the canvas and ``region`` its
    place there. ``canvas`` is the whole stitched object (every pixel a patch reached;
    ``canvas_covered`` marks them, the rest is 0) and ``canvas_origin`` the (row, col) of
    its pixel (0, 0) in the object frame: the object the data residual re-simulates."""

    recon: np.ndarray
    ground_truth: np.ndarray | None
    region: tuple
    patches: np.ndarray           # predicted patches (n, C, N, N) complex64, scan order
    inference_time_s: float
    stitch_time_s: float
    n_patterns: int
    infer_batch_size: int         # the batch size that finished (smaller after OOM back-off)
    stitch: dict
    canvas: np.ndarray | None = None
    canvas_covered: np.ndarray | None = None
    canvas_origin: tuple = (0, 0)
    stitch_weights: np.ndarray | None = None  # (N, N) weights of stitch_weighting="probe"
    precision: str | None = None  # a network's prediction: '32' or 'bf16-mixed'


def grid_geometry(data: PtychoDataset, index: int = 0) -> tuple[int, int] | None:
    """``(n_side, stride)`` of a regular square grid scan of object ``index`` (from the
    simulator's metadata), or None for any other scan."""
    meta = data.metadata
    if "n_side" not in meta or "stride" not in meta:
        return None
    n_side, stride = int(meta["n_side"]), int(meta["stride"])
    n0 = data.object_selection(index).size
    if (n_side - data.gridsize + 1) ** 2 != n0:
        raise ValueError(f"dataset '{data.path}': key '_metadata' has n_side={n_side}, which "
                         f"gives {(n_side - data.gridsize + 1) ** 2} patterns, but object "
                         f"{index} has {n0} (expected n_side consistent with the scan)")
    return n_side, stride


def scored_region(test: PtychoDataset, inference: InferenceConfig,
                  object_index: int = 0) -> tuple[int, int, int, int]:
    """The one region (row0, col0, height, width) of the object frame on which every row of
    a study (network, iterative, refined) is scored: the grid region of a regular grid
    scan, else :func:`ptycho.stitching.scan_region` of the scan positions with the
    position stitching's crop."""
    grid = grid_geometry(test, object_index)
    N = test.N
    if grid is not None:
        return grid_region(N, grid[1], grid[0])
    crop = None if inference.stitch == "tiles" else inference.crop_for(N)
    centres = test.centres[test.object_selection(object_index)]  # no copy of the patterns
    return scan_region(centres.astype(np.float64), N, crop=crop)


def stitch_options(inference: InferenceConfig, N: int) -> StitchOptions:
    """The stitching options of an inference config (tiles: the reference recipe, whose
    tiles sit on integer grid positions; crop, sub-pixel and phase options are for
    ``positions``)."""
    if inference.stitch == "tiles":
        return StitchOptions(mode="tiles")
    return StitchOptions(mode="positions", crop=inference.crop_for(N),
                         subpixel=inference.stitch_subpixel, align_phase=inference.align_phase)


def stitch_weights(inference: InferenceConfig, probe) -> np.ndarray | None:
    """The per-pixel weights of position stitching: None (overlaps averaged) for
    ``stitch_weighting="uniform"``, ``|probe|**2`` summed over its modes for ``"probe"``."""
    if inference.stitch_weighting == "uniform":
        return None
    return probe_weights(probe)


def stitch_test_object(patches: np.ndarray, test: PtychoDataset, inference: InferenceConfig,
                       object_index: int = 0, *, probe=None) -> Reconstruction:
    """Stitch the predicted ``patches`` (n, C, N, N) of object ``object_index``.

    ``stitch='tiles'``: the central ``stride x stride`` tiles on the scan grid (the
    reference recipe; regular grid scans at gridsize 1). ``stitch='positions'``: each
    patch's central ``crop x crop`` region at its (sub-pixel) scan position, overlaps
    averaged (``stitch_weighting="probe"``: weighted by ``|probe|**2`` summed over modes,
    cropped like the patches; ``probe`` default: the test scan's). Either is clipped to
    :func:`scored_region` (the grid region of a grid scan, else the fully covered box of
    the positions), the region iterative rows use too.
    """
    sel = test.object_selection(object_index)
    sub = test.select(sel)
    N = test.N
    options = stitch_options(inference, N)
    weights = stitch_weights(inference, test.probe if probe is None else probe)
    grid = grid_geometry(test, object_index)
    gt_full = None
    if test.ground_truth is not None and object_index == 0:
        gt_full = test.ground_truth
    elif test.ground_truth_all is not None and object_index < len(test.ground_truth_all):
        gt_full = test.ground_truth_all[object_index]
    t0 = time.perf_counter()
    centres = sub.centres.astype(np.float64)
    if options.mode == "tiles":
        if grid is None:
            raise StudyError(f"dataset '{test.path}': stitch='tiles' needs a regular grid scan "
                             "('n_side' and 'stride' in _metadata) (allowed here: --stitch "
                             "positions) [flag --stitch]")
        recon, _ = stitch(patches, centres, options, grid=grid)
        region = grid_region(N, grid[1], grid[0])
        canvas, covered, canvas_origin = recon, np.ones(recon.shape, bool), region[:2]
    else:
        region = scored_region(test, inference, object_index)
        if gt_full is not None:
            canvas, coverage = stitch(patches, centres, options, canvas_shape=gt_full.shape,
                                      weights=weights)
            origin = (0, 0)
        else:
            shape, origin = canvas_for_positions(centres.reshape(-1, 2), N, crop=options.crop)
            canvas, coverage = stitch(patches, centres + np.asarray(origin), options,
                                      canvas_shape=shape, weights=weights)
        recon = clip_to_region(canvas, (region[0] + origin[1], region[1] + origin[0],
                                        region[2], region[3]))
        covered, canvas_origin = coverage > 0, (-origin[1], -origin[0])
    t_st = time.perf_counter() - t0
    gt = None
    if gt_full is not None:
        gt = clip_to_region(gt_full, region)
        if gt.shape != recon.shape:
            raise ValueError(f"ground truth region {gt.shape} does not match the "
                             f"reconstruction {recon.shape}")
        gt = gt.astype(np.complex64)
    return Reconstruction(recon=recon.astype(np.complex64), ground_truth=gt,
                          region=tuple(int(v) for v in region), patches=patches,
                          inference_time_s=0.0, stitch_time_s=t_st, n_patterns=int(sel.size),
                          infer_batch_size=0,
                          stitch={"mode": options.mode, "crop": options.crop,
                                  "subpixel": options.subpixel,
                                  "align_phase": options.align_phase,
                                  "weighting": inference.stitch_weighting},
                          canvas=np.asarray(canvas).astype(np.complex64), canvas_covered=covered,
                          canvas_origin=tuple(int(v) for v in canvas_origin),
                          stitch_weights=weights)


def score(rec: Reconstruction, trim: int = 2, *, register: bool = False) -> tuple[dict, tuple]:
    """Metrics dict and the aligned (amp, amp_gt, phase, phase_gt) images for figures.
    ``register``: remove the sub-pixel translation too, for a row whose frame is not the
    ground truth's (positions corrected or refined, ``ptycho.evaluation``)."""
    result = evaluate_reconstruction(rec.recon, rec.ground_truth, trim=trim, register=register)
    aligned = align_for_metrics(rec.recon, rec.ground_truth, trim=trim, register=register)
    return result, aligned


def save_reconstruction(path: Path, rec: Reconstruction, scan: PtychoDataset | None = None
                        ) -> Path:
    """``recon.npz``: the scored reconstruction, its amplitude, phase and region, the ground
    truth (when there is one), the whole stitched object; with ``scan``, the probe the
    reconstruction was made and scored with (``probe``: refined or learned when the study
    updated it) and the positions of test object 0 it was stitched at (``positions_px``
    (n, 2) (x, y) object pixels: corrected ones after ``--refine-positions``)."""
    arrays = dict(reconstruction=rec.recon, amplitude=np.abs(rec.recon),
                  phase=np.angle(rec.recon), region=np.asarray(rec.region, dtype=np.int64))
    if scan is not None:
        sub = scan.select(scan.object_selection(0))
        arrays.update(probe=np.asarray(scan.probe, dtype=np.complex64),
                      positions_px=sub.centres.reshape(-1, 2).astype(np.float64))
    if rec.ground_truth is not None:
        arrays["ground_truth"] = rec.ground_truth
    if rec.canvas is not None:  # the whole stitched object the data residual is taken on
        arrays.update(stitched=rec.canvas, stitched_covered=rec.canvas_covered,
                      stitched_origin=np.asarray(rec.canvas_origin, dtype=np.int64))
    return save_npz_atomic(path, **arrays)


def reconstruction_record(model_id: str, kind: str, rec: Reconstruction, residual: dict,
                          device: str, torch_threads: int, **fields) -> StudyMetrics:
    """The metrics record of any row (network, iterative, refined, reconstruction): what
    the reconstruction ``rec`` says (region, stitching, inference counts and times) and its
    data residual, the device and CPU thread count it ran with, plus the row kind's own
    ``fields`` (which win). Scores are added by
    :func:`score_record`."""
    return StudyMetrics(**{
        "model_id": model_id, "kind": kind, "ground_truth": rec.ground_truth is not None,
        "data_residual": residual, "stitch": rec.stitch, "region": list(rec.region),
        "n_test_patterns_scored": rec.n_patterns, "inference_time_s": rec.inference_time_s,
        "inference_patterns_per_s": (rec.n_patterns / rec.inference_time_s  # None: no
                                     if rec.inference_time_s > 0 else None),  # prediction ran
        "infer_batch_size_used": rec.infer_batch_size, "stitch_time_s": rec.stitch_time_s,
        "device": str(device), "torch_threads": torch_threads,
        "precision": rec.precision, **fields})


def score_record(m: StudyMetrics, rec: Reconstruction, *, register: bool = False
                 ) -> tuple | None:
    """Scores of ``rec`` against its ground truth into ``m`` (nothing without one; with
    ``register`` as :func:`score`); returns the aligned images ``(amp, amp_gt, phase,
    phase_gt)`` and the FRC, or None."""
    if rec.ground_truth is None:
        return None
    result, images = score(rec, register=register)
    m.set_scores(result)
    return result["frc"], images

