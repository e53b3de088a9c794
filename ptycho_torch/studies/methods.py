"""The rows that are not a trained network: Pty-chi from a flat start, and Pty-chi started
at a network's object (refined); how each is keyed, reconstructed, scored and saved."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from ptycho.artifacts import StudyLayout, write_json_atomic
from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import StudyError
from ptycho.study_metrics import StudyMetrics
from ptycho_torch.model.checkpoint import UntrustedCheckpointError, load_checkpoint, load_model
from ptycho_torch.core.residual import test_object_residuals, whole_object_residual
from ptycho_torch.engine.device import resolve_device
from ptycho_torch.engine.inference import predict_patches
from ptycho_torch.generators import count_parameters
from ptycho_torch.ptychi.baseline import iterative_reconstruction, reconstruct_iterative
from ptycho_torch.ptychi.engine import PtychiOptions, reconstruct
from ptycho_torch.ptychi.scan import scan_for_ptychi
from ptycho_torch.ptychi.start import start_from_patches
from ptycho_torch.pipeline.reconstruct import check_scan, with_model_probe
from ptycho.reconstruction import (
    reconstruction_record,
    save_reconstruction,
    score_record,
    stitch_options,
)
from ptycho_torch.engine.inference import reconstruct_test_object
from ptycho_torch.studies.common import data_key, refined_key, split_list
from ptycho_torch.studies.rows import metrics_row, reuse_or_compute

log = logging.getLogger(__name__)


ITERATIVE_NOTE = ("Pty-chi with the known probe and positions (not optimized); "
                  "time = task build + all epochs")


def iterative_row(model_id: str, engine: str, rec, test, *, epochs: int, device: str,
                  key: dict, note: str = ITERATIVE_NOTE, loss=None) -> StudyMetrics:
    """The metrics record of an iterative reconstruction (scored when there is ground truth;
    the data residual always)."""
    sub = test.select(test.object_selection(0))
    residual = whole_object_residual(rec, sub, test.probe, photon_scale=test.photon_scale,
                                     bad_pixels=test.bad_pixels)
    m = reconstruction_record(model_id, "iterative", rec, residual, device,
                              torch.get_num_threads(), stitch_time_s=0.0,
                              engine=engine, batch_size=rec.infer_batch_size,
                              epochs_completed=int(epochs), loss=list(loss or []),
                              compare_key=key, note=note, total_time_s=rec.inference_time_s)
    score_record(m, rec)
    return m


def save_row(layout: StudyLayout, m: StudyMetrics, rec, scan=None) -> StudyMetrics:
    """Write a computed row: ``recons/<id>/recon.npz`` (with ``scan``'s probe and positions),
    then ``runs/<id>/metrics.json`` last."""
    save_reconstruction(layout.recon_dir / "recon.npz", rec, scan=scan)
    write_json_atomic(layout.metrics_path, m.to_json())
    return m


def run_iterative_row(engine: str, test, cfg: StudyConfig, epochs: int, batch_size: int,
                      key: dict) -> StudyMetrics:
    """Pty-chi reconstruction of test object 0 (``runs/ptychi_<engine>``), or the finished
    row with the same ``key``."""
    layout = StudyLayout(Path(cfg.run.output_dir), f"ptychi_{engine}")

    def compute() -> StudyMetrics:
        device = resolve_device(cfg.training.device)
        log.info("%s: %d epochs on %s", layout.model_id, epochs, device)
        rec, res = reconstruct_iterative(engine, test, epochs=epochs,
                                         batch_size=batch_size or None, device=device,
                                         seed=cfg.training.seed, inference=cfg.inference)
        m = iterative_row(layout.model_id, engine, rec, test, epochs=res.epochs,
                          device=res.device, key=key, loss=res.loss)
        return save_row(layout, m, rec, scan=test)
    return reuse_or_compute(metrics_row(layout, key), compute, overwrite=cfg.run.overwrite)


def network_patches(checkpoint: Path, test, cfg: StudyConfig, device: str):
    """The trained network's predicted patches of test object 0 and their centres."""
    model = load_model(str(checkpoint), device, trust=cfg.run.trust_checkpoint)
    sub = test.select(test.object_selection(0))
    return (predict_patches(model, sub, cfg.inference.infer_batch_size), sub.centres,
            sub.pattern_ids())


def refine_states(engine: str, patches, centres, ids, scan, cfg: StudyConfig, *, epochs: int,
                  every: int, batch_size: int, device: str):
    """Pty-chi ``engine`` on ``scan`` started at the network's patches at its positions
    (:func:`ptycho_torch.ptychi.start.start_from_patches`, stitched with the study's options),
    run in chunks of ``every`` epochs: ``(IterativeResult, states, start object)``. ``ids``:
    the patches' pattern ids (``PtychoDataset.pattern_ids``)."""
    init = start_from_patches(patches, centres, scan, stitch_options(cfg.inference, scan.N),
                              pattern_ids=ids)
    options = PtychiOptions(engine, epochs=epochs, batch_size=batch_size or None,
                            device=device, seed=cfg.training.seed)
    res, states = reconstruct(scan, options, every=every, initial_object=init)
    return res, states, init


def refined_row(model_id: str, engine: str, rec, test, source: StudyMetrics, *, epochs: int,
                device: str, key: dict, loss, what: str) -> StudyMetrics:
    """The record of a refined reconstruction: scored like an iterative row; its total time
    adds the network's inference and stitching (the training is paid once per family)."""
    m = iterative_row(model_id, engine, rec, test, epochs=epochs, device=device, key=key,
                      loss=loss, note=f"Pty-chi {engine} started at {source.model_id}'s "
                                      f"reconstruction, known probe and positions; {what}")
    m.kind, m.initialized_from = "refined", source.model_id
    m.architecture, m.n_parameters = source.architecture, source.n_parameters
    m.train_time_s = source.train_time_s
    m.total_time_s = (rec.inference_time_s + (source.inference_time_s or 0.0)
                      + (source.stitch_time_s or 0.0))
    return m


def run_refined_row(source: StudyMetrics, engine: str, test, cfg: StudyConfig, epochs: int,
                    batch_size: int) -> StudyMetrics:
    """``runs/<network>+<engine>``: ``engine`` for ``epochs`` from the network's object,
    or the finished row with the same settings and the same network."""
    out = Path(cfg.run.output_dir)
    src = StudyLayout(out, source.model_id)
    layout = StudyLayout(out, f"{source.model_id}+{engine}")
    key = refined_key(cfg, engine, epochs, batch_size, src)
    return reuse_or_compute(
        metrics_row(layout, key), lambda: _refine(source, engine, test, cfg, epochs, batch_size,
                                                  layout, key),
        overwrite=cfg.run.overwrite, refuse=False)


def _refine(source: StudyMetrics, engine: str, test, cfg: StudyConfig, epochs: int,
            batch_size: int, layout: StudyLayout, key: dict) -> StudyMetrics:
    src = StudyLayout(layout.output_dir, source.model_id)
    device = resolve_device(cfg.training.device)
    log.info("%s: %d epochs on %s from %s's reconstruction", layout.model_id, epochs, device,
             source.model_id)
    patches, centres, ids = network_patches(src.run_dir / "model.ckpt", test, cfg, device)
    res, _, _ = refine_states(engine, patches, centres, ids, scan_for_ptychi(test, 0), cfg,
                              epochs=epochs, every=epochs, batch_size=batch_size, device=device)
    rec = iterative_reconstruction(test, res.obj, time_s=res.time_s, n_patterns=res.n_patterns,
                                   batch_size=res.batch_size, inference=cfg.inference)
    m = refined_row(layout.model_id, engine, rec, test, source, epochs=res.epochs,
                    device=res.device, key=key, loss=res.loss, what=f"{epochs} epochs")
    return save_row(layout, m, rec, scan=test)


def reused_id(checkpoint: Path) -> str:
    """``<run>@reused``: the row of a model from another study (``.../runs/<run>/model.ckpt``)
    applied to this one's test scan."""
    return f"{Path(checkpoint).resolve().parent.name}@reused"


def reused_key(cfg: StudyConfig, checkpoint: Path) -> dict:
    """A reused row's ``compare_key``: the checkpoint (path, size, modification time), the
    scored scan and the inference settings."""
    p = Path(checkpoint).resolve()
    st = p.stat()
    return {"checkpoint": str(p), "checkpoint_size": int(st.st_size),
            "checkpoint_mtime_ns": int(st.st_mtime_ns), "data": data_key(cfg),
            "inference": cfg.inference.to_dict()}


def run_reused_row(checkpoint: Path, test, cfg: StudyConfig) -> StudyMetrics:
    """``runs/<run>@reused``: the model of ``checkpoint``, trained on another scan, predicts
    and stitches this comparison's test object 0 with no training, scored like a network
    row with the probe it trained with (as ``ptycho-reconstruct`` does); or the finished
    row with the same key."""
    layout = StudyLayout(Path(cfg.run.output_dir), reused_id(checkpoint))
    key = reused_key(cfg, checkpoint)
    return reuse_or_compute(metrics_row(layout, key),
                            lambda: _apply_reused(checkpoint, test, cfg, layout, key),
                            overwrite=cfg.run.overwrite, refuse=False)


def _apply_reused(checkpoint: Path, test, cfg: StudyConfig, layout: StudyLayout,
                  key: dict) -> StudyMetrics:
    device = resolve_device(cfg.training.device)
    model = load_model(str(checkpoint), device, trust=cfg.run.trust_checkpoint,
                       flag="--reuse-models")
    check_scan(model, test, str(checkpoint))
    scan = with_model_probe(model, test, checkpoint, "test scan's", "", "--reuse-models")
    log.info("%s: %s applied to the test scan (no training; the model's probe)",
             layout.model_id, checkpoint)
    rec = reconstruct_test_object(model, scan, cfg.inference)
    residual, patch_residual = test_object_residuals(rec, scan)
    mc = model.model_config
    m = reconstruction_record(
        layout.model_id, "network", rec, residual, device, torch.get_num_threads(),
        patch_residual=patch_residual,
        architecture=mc.architecture, input_scale=model.data_config.input_scale,
        n_parameters=count_parameters(model.generator), compare_key=key,
        total_time_s=rec.inference_time_s + rec.stitch_time_s,
        note=f"model {checkpoint} (trained on another scan) applied with no training; "
             "scored with the probe it trained with")
    score_record(m, rec)
    return save_row(layout, m, rec, scan=scan)


def parse_reuse(text: str, N: int, gridsize: int, *, trust: bool = False) -> tuple[Path, ...]:
    """The ``--reuse-models`` checkpoints: existing, distinct row names, and models of this
    comparison's N and gridsize (read from each checkpoint's hyperparameters, weights only
    unless ``trust``: ``--trust-checkpoint``)."""
    out, ids = [], {}
    for item in split_list(text):
        p = Path(item)
        if not p.is_file():
            raise StudyError(f"--reuse-models: checkpoint '{p}' does not exist (expected a "
                             "study's runs/<model_id>/model.ckpt)")
        rid = reused_id(p)
        if rid in ids:
            raise StudyError(f"--reuse-models: '{ids[rid]}' and '{p}' would both be row "
                             f"{rid!r} (allowed: checkpoints in differently named run folders)")
        ids[rid] = p
        try:
            hp = load_checkpoint(p, trust=trust)["hyper_parameters"]
            mc = hp["model_config"]
            got = (int(mc["N"]), int(mc["gridsize"]))
        except UntrustedCheckpointError as err:
            raise StudyError(f"--reuse-models: {err}") from None
        except Exception:  # noqa: BLE001 - any failure is one refusal line
            raise StudyError(f"--reuse-models: checkpoint '{p}' cannot be read (expected a "
                             "model.ckpt written by this project)") from None
        if got != (N, gridsize):
            raise StudyError(f"--reuse-models: checkpoint '{p}' is a model of N={got[0]}, "
                             f"gridsize={got[1]} (expected N={N}, gridsize={gridsize}, the "
                             "comparison's)")
        out.append(p)
    return tuple(out)
