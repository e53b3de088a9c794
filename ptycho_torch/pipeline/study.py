"""One study, end to end: :func:`run_study` (the runner script only calls it).

preflight (config, output directory, resume state, device, both datasets) -> first write
-> train -> batched ``forward_predict`` over the scored scan -> stitch -> metrics against
the ground truth (when the scan has one) and the data residual (always) -> artifacts,
``metrics.json`` last. Each step takes what it needs as arguments; nothing is global.
"""
from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ptycho.artifacts import StudyLayout, copy_atomic, write_json_atomic
from ptycho.config.cli import flag_hint
from ptycho.config.config import DataConfig
from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import StudyError
from ptycho.dataset import PtychoDataset
from ptycho.probes import probe_fill
from ptycho.plotting import object_pixel_m, save_reconstruction_figure, save_study_figures
from ptycho.stitching import clip_to_region, grid_region
from ptycho.study_metrics import StudyMetrics
from ptycho_torch.core.residual import data_residual, test_object_residuals
from ptycho_torch.engine.callbacks import SnapshotCallback
from ptycho_torch.engine.data import data_config_from, input_scale_from, split_indices
from ptycho_torch.engine.device import check_device
from ptycho_torch.engine.inference import predict_patches
from ptycho_torch.engine.loggers import check_logger
from ptycho_torch.engine.outputs import is_launch_rank_zero, last_checkpoint, prepare_output, start_work
from ptycho_torch.engine.training import fit_model
from ptycho_torch.generators import count_parameters
from ptycho_torch.engine.interrupts import Interrupted
from ptycho_torch.pipeline.probe_update import (compare_with_lsqml, model_probe_config,
                                                 poisson_floor_mae, refine_study_probe, report,
                                                 resolve_route, scored_at_corrected_positions,
                                                 warn_learned_probe)
from ptycho_torch.pipeline.candidates import check_candidates, fit_candidates
from ptycho_torch.pipeline.stitch_preflight import check_stitching
from ptycho.inputs import load_study_data
from ptycho.two_half_frc import two_half_frc
from ptycho.neighbour_agreement import study_disagreement
from ptycho.reconstruction import (
    Reconstruction,
    grid_geometry,
    reconstruction_record,
    save_reconstruction,
    score,
)
from ptycho_torch.engine.inference import reconstruct_test_object
from ptycho_torch.engine.threads import apply_num_threads, threads_line

log = logging.getLogger(__name__)

FILL_WARNING = 0.5  # probe_fill above which gridsize 1 is warned of


# ------------------------------------------------------------------------- data
def check_data(cfg: StudyConfig, train: PtychoDataset, test: PtychoDataset) -> DataConfig:
    """Every data check that training, stitching and scoring would otherwise hit late.

    Returns the data-derived config. Raises StudyError (one line) naming file and key.
    """
    user = cfg.run.train_npz is not None

    def bad(ds, key, what, expected, flag):
        hint = f" [flag {flag}]" if user else ""
        return StudyError(f"dataset '{ds.path}': key '{key}' {what} (expected {expected}){hint}")

    if train.n < 2:
        raise bad(train, "diffraction", f"has {train.n} pattern(s)",
                  "at least 2: one is held out for validation", "--train-npz")
    split_indices(train.n, cfg.training.val_fraction, cfg.training.seed,
                  cfg.training.max_train_patterns)
    try:
        input_scale_from(train.diffraction)  # refuses all-zero patterns
    except ValueError:
        raise bad(train, "diffraction", "is all zeros", "some positive amplitudes",
                  "--train-npz") from None
    if not float(np.sum(np.abs(train.probe) ** 2)) > 0:
        raise bad(train, "probeGuess", "is all zeros", "a probe with nonzero intensity",
                  "--train-npz")
    photon_scale = train.photon_scale
    if isinstance(photon_scale, bool) or not isinstance(photon_scale, (int, float)) \
            or not np.isfinite(photon_scale) or photon_scale <= 0:
        raise bad(train, "_metadata", f"has scale={photon_scale!r}",
                  "a positive number (the photon scale s), or no 'scale' entry", "--train-npz")
    if test.probe.shape != train.probe.shape:
        raise bad(test, "probeGuess", f"has shape {test.probe.shape}",
                  f"{train.probe.shape}, as in the training scan", "--test-npz")
    try:  # the scored object must stitch and score exactly as after training
        test.object_selection(0)
        grid = grid_geometry(test)
    except ValueError as err:
        raise StudyError(f"{err}{' [flag --test-npz]' if user else ''}") from None
    if cfg.inference.stitch == "tiles" and grid is None:
        raise StudyError(f"dataset '{test.path}': stitch='tiles' needs a regular grid scan "
                         "('n_side' and 'stride' in _metadata) (allowed here: --stitch "
                         "positions) [flag --stitch]")
    if grid is not None and test.ground_truth is not None:
        n_side, stride = grid
        if not 1 <= stride <= cfg.model.N:
            raise bad(test, "_metadata", f"has stride={stride}", f"1..N = 1..{cfg.model.N}",
                      "--test-npz")
        region = grid_region(cfg.model.N, stride, n_side)
        try:
            clip_to_region(test.ground_truth, region)
        except ValueError:
            raise bad(test, "YY_ground_truth", f"has shape {test.ground_truth.shape}, too small "
                      f"for the stitched region {region} (row0, col0, height, width)",
                      "an object covering the scan of test object 0", "--test-npz") from None
    try:  # the canvas fits in memory; a ground truth covers every stitched patch
        check_stitching(test, cfg.inference)
    except ValueError as err:
        flag = "--test-npz" if cfg.run.test_npz else "--train-npz"
        raise StudyError(f"{err}{f' [flag {flag}]' if user else ''}") from None
    return data_config_from(train)


# ------------------------------------------------------------------------ study
@dataclass
class StudyResult:
    """What a finished study wrote: its metrics record and where its files are."""

    metrics: StudyMetrics
    layout: StudyLayout


def run_study(cfg: StudyConfig) -> StudyResult | None:
    """Run one study; returns its result (``None`` on the extra ranks of a DDP launch).

    Every check (config, output directory, resume state, device, both datasets, the
    stitching geometry) runs before anything is written into ``output_dir`` (except the
    simulated-dataset cache, which is only written for data that pass those checks by
    construction); a refusal raises :class:`StudyError`.
    """
    t_start = time.perf_counter()
    rank_zero = is_launch_rank_zero()
    p = preflight_study(cfg)
    normalisation = p.train.metadata.get("normalisation")
    if normalisation:
        log.info("normalisation: %s", normalisation)
    log.info("input scale 1/RMS(training amplitudes) = %.4g; photon scale s = %.4g",
             p.data_config.input_scale, p.data_config.photon_scale)
    if "test_scan_scale" in p.data_info:
        log.info("test scan in the training scan's units: %s", p.data_info["test_scan_scale"]["source"])

    # ---- first write into output_dir (besides the simulated-dataset cache) ----
    if rank_zero:
        log.info("output folder: %s", p.layout.output_dir.resolve())
        start_work(cfg, p.layout)
    callbacks = []
    if cfg.run.snapshot_every:
        callbacks.append(SnapshotCallback(p.test, p.layout.visuals_dir / "snapshots",
                                          cfg.model_id, cfg.run.snapshot_every))
    fit = train_study_model(cfg, p, callbacks)
    if not fit.is_global_zero:
        return None
    model = fit.model
    device = torch.device(p.accelerator)
    model.to(device)
    test = learned_probe_test(p, model)
    rec = reconstruct_test_object(model, test, cfg.inference)
    residual, patch_residual = test_object_residuals(rec, test,
                                                     photon_scale=p.data_config.photon_scale)
    if p.route == "lsqml":
        compare_with_lsqml(p.data_info["probe_update"], residual)
    m = network_record(cfg, fit, rec, residual, p.data_config, str(device), normalisation)
    m.patch_residual = patch_residual
    m.probe_fill = probe_fill(test.probe)
    centres = test.select(test.object_selection(0)).centres
    m.two_half_frc = two_half_frc(rec.patches, centres, cfg.inference, rec.stitch_weights)
    m.neighbour_disagreement = study_disagreement(rec.patches, centres, cfg.inference)["median"]
    m.data_time_s = p.data_time
    write_run_files(cfg, p, fit)
    save_reconstruction(p.layout.recon_dir / "recon.npz", rec, scan=test)
    m.figures = [str(f) for f in score_and_plot(
        m, rec, p.layout, register=scored_at_corrected_positions(p.data_info["probe_update"]),
        pixel_size_m=object_pixel_m(test.metadata))]
    m.snapshots = [str(f) for f in callbacks[0].written] if callbacks else []
    m.total_time_s = time.perf_counter() - t_start
    write_json_atomic(p.layout.metrics_path, m.to_json())  # written last: marks the study finished
    log.info("written: %s; reconstruction %s; figures in %s", p.layout.metrics_path.resolve(),
             (p.layout.recon_dir / "recon.npz").resolve(), p.layout.visuals_dir.resolve())
    return StudyResult(metrics=m, layout=p.layout)


def learned_probe_test(p: StudyInputs, model) -> PtychoDataset:
    """The test scan with the probe the model ends with: on the learn route the learned
    probe (reported against the file's), else the scan as it is."""
    if p.route != "learn":
        return p.test
    learned = model.current_probe().cpu().numpy().astype(np.complex64)
    learned = learned.reshape(p.test.probe.shape)
    sub = p.train.select(p.train.object_selection(0))
    patches = predict_patches(model, sub, batch_size=256)
    before, after = (data_residual(patches, sub.diffraction, probe,
                                   photon_scale=p.train.photon_scale,
                                   bad_pixels=p.train.bad_pixels)
                     for probe in (p.train.probe, learned))
    floor = poisson_floor_mae(sub.diffraction, p.train.photon_scale, p.train.bad_pixels)
    p.data_info["probe_update"].update(report("probe update (learn)", before, after, floor))
    return replace(p.test, probe=learned)


@dataclass
class StudyInputs:
    """What :func:`preflight_study` checked and loaded (``data_time`` in seconds)."""

    layout: StudyLayout
    accelerator: str
    train: PtychoDataset
    test: PtychoDataset
    data_info: dict
    data_config: DataConfig
    data_time: float
    route: str = "none"


def preflight_study(cfg: StudyConfig) -> StudyInputs:
    """Every check of :func:`run_study` before its first write: output directory, device,
    threads, both datasets (loaded, checked, and the probe refined when asked)."""
    try:
        layout = prepare_output(cfg)
        accelerator = check_device(cfg)
        check_logger(cfg.run.logger)
        threads = apply_num_threads(cfg.run.num_threads)
        if cfg.training.deterministic:  # cuBLAS reads it when its first handle is created
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        t0 = time.perf_counter()
        train, test, data_info = load_study_data(cfg)
        data_time = time.perf_counter() - t0
        data_config = check_data(cfg, train, test)
        check_candidates(cfg, test)
        log.info(threads_line(*threads))
        warn_probe_fill(cfg, train.probe)
        route, why = resolve_route(cfg)
        log.info("probe update: %s (%s)", route, why)
        warn_learned_probe(cfg, route)
        data_info["probe_update"] = {"route": route, "reason": why}
        if route == "lsqml":
            same = data_info["train_npz"] == data_info["test_npz"]
            train, test, info = refine_study_probe(cfg, train, test, same_scan=same)
            data_info["probe_update"].update(info)
    except StudyError:
        raise
    except ValueError as err:
        raise StudyError(flag_hint(err)) from None
    return StudyInputs(layout=layout, accelerator=accelerator, train=train, test=test,
                       data_info=data_info, data_config=data_config, data_time=data_time,
                       route=route)


def warn_probe_fill(cfg: StudyConfig, probe) -> None:
    """A warning when the probe's fill (``ptycho.probes.probe_fill``) is above
    :data:`FILL_WARNING` at gridsize 1 (each pattern then constrains its patch weakly)."""
    fill = probe_fill(probe)
    if cfg.model.gridsize == 1 and fill > FILL_WARNING:
        log.warning("the probe fills %.2f of the %d x %d window (90 %% of its energy; above "
                    "%.1f): at gridsize 1 a single pattern constrains its patch weakly; a "
                    "larger --N or --gridsize 2 gives the phase problem more room", fill,
                    cfg.model.N, cfg.model.N, FILL_WARNING)


def train_study_model(cfg: StudyConfig, p: StudyInputs, callbacks: list):
    """:func:`fit_model` of the study; an interruption (or a wall-clock stop) is logged,
    an interrupted fit raises KeyboardInterrupt on rank 0, and Lightning's SIGTERM stop
    (a ``SystemExit`` with status 0) :class:`Interrupted` (status 143)."""
    start = partial(fit_model, cfg.model, data_config=p.data_config, train=p.train,
                    progress_bar=cfg.run.progress_bar, logger=cfg.run.logger,
                    probe_config=model_probe_config(cfg, p.route),
                    trust_checkpoint=cfg.run.trust_checkpoint)
    try:
        if cfg.training.candidates == 1:
            fit = start(training_config=cfg.training, work_dir=p.layout.work_dir,
                        resume=cfg.run.resume, extra_callbacks=callbacks)
        else:  # several starts, one chosen: ptycho_torch.pipeline.candidates
            fit = fit_candidates(cfg, p.test, start, callbacks, p.layout.work_dir,
                                 torch.device(p.accelerator))
    except (KeyboardInterrupt, SystemExit, Interrupted) as err:
        log.error("training interrupted: no metrics.json written; continue with --resume")
        if isinstance(err, SIGTERMException):
            raise Interrupted(signal.SIGTERM) from None
        raise
    if not fit.is_global_zero:
        return fit
    if fit.interrupted:
        raise KeyboardInterrupt
    if fit.stop_reason == "max_time":
        log.warning("the wall-clock cap --max-train-minutes=%g stopped training before its "
                    "epoch/step budget; metrics.json records wall_time_cap_hit=true",
                    cfg.training.max_train_minutes)
    return fit


def write_run_files(cfg: StudyConfig, p: StudyInputs, fit) -> None:
    """``config.json``, ``history.json`` and ``model.ckpt`` (when the checkpoint exists)."""
    layout = p.layout
    write_json_atomic(layout.run_dir / "config.json", {
        "study": cfg.to_dict(), "data_config": p.data_config.to_dict(), "data": p.data_info})
    write_json_atomic(layout.run_dir / "history.json", fit.history)
    ckpt = fit.checkpoint if fit.checkpoint is not None else last_checkpoint(layout)
    if Path(ckpt).exists():
        copy_atomic(ckpt, layout.run_dir / "model.ckpt")


def network_record(cfg: StudyConfig, fit, rec: Reconstruction, residual: dict,
                   data_config: DataConfig, device: str, normalisation) -> StudyMetrics:
    """The metrics record of a trained network's reconstruction (scores added later)."""
    h = fit.history
    return reconstruction_record(
        cfg.model_id, "network", rec, residual, device, torch.get_num_threads(),
        architecture=cfg.model.architecture,
        n_parameters=count_parameters(fit.model.generator),
        epochs_completed=len(h.get("epoch", [])), steps_completed=fit.steps_completed,
        epochs_trained=fit.epochs_trained, stop_reason=fit.stop_reason,
        wall_time_cap_hit=fit.stop_reason == "max_time",
        resumed_from_epoch=fit.resumed_from_epoch, world_size=fit.world_size,
        candidates=fit.candidates,
        n_train_patterns=fit.n_train, n_val_patterns=fit.n_val, train_time_s=fit.train_time_s,
        train_patterns_per_s=fit.patterns_trained / max(fit.train_time_s, 1e-9),
        final_train_loss=(h.get("train_loss") or [float("nan")])[-1],
        final_val_loss=(h.get("val_loss") or [float("nan")])[-1],
        input_scale=data_config.input_scale, normalisation=normalisation,
        torch_version=torch.__version__)


def score_and_plot(m: StudyMetrics, rec: Reconstruction, layout: StudyLayout, *,
                   register: bool = False, pixel_size_m: float | None = None) -> list[Path]:
    """Scores against the ground truth into ``m`` (when there is one; ``register``: with
    the translation removed too) and the figures (scale bars in pixels, or in nm / µm with
    ``pixel_size_m``)."""
    if rec.ground_truth is None:
        return [save_reconstruction_figure(
            layout.visuals_dir / f"{m.model_id}_reconstruction.png", rec.recon,
            title=f"{m.model_id}: reconstruction (no ground truth)", label=m.model_id,
            pixel_size_m=pixel_size_m)]
    result, (amp, amp_gt, ph, ph_gt) = score(rec, register=register)
    m.set_scores(result)
    return save_study_figures(layout.visuals_dir, m.model_id, amp_gt, ph_gt, amp, ph,
                              result["frc"], title=f"{m.model_id}: test object 0",
                              pixel_size_m=pixel_size_m)
