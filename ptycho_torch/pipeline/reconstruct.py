"""Reconstruct any supported scan with a trained model (``ptycho-reconstruct``).

    ptycho-reconstruct --checkpoint RUN/model.ckpt --data FILE --output-dir DIR

Reads the scan (this project's NPZ, upstream PtychoPINN NPZ, Ptychodus, CXI; detected by
content) in the units the model was trained in (the scan-scale rule of
:mod:`ptycho.formats.model_units`), checks that the model can take it (pattern size, probe
size, gridsize, positions), predicts every pattern of scan 0 in batches through the model's
``forward_predict`` (``ptycho_torch.engine.inference.reconstruct_test_object``, which calls
``ptycho_torch.engine.inference.predict_patches`` with the batch size of ``--infer-batch-size``),
stitches the patches at their scan positions and writes into ``--output-dir``:

- ``recon.npz``: the complex reconstruction of the scored region, amplitude, phase,
  region (and the clipped ground truth when the file has one), and the whole stitched
  object (``stitched``, ``stitched_covered``, ``stitched_origin``);
- ``reconstruction.png`` (amplitude and phase), and the comparison figures with ground truth;
- ``product-out.h5``: a Ptychodus 1.7 product (object, probe, positions in metres, pixel
  sizes; the file's geometry when it has one, else the conventional values of
  ``ptycho.formats.CONVENTIONAL_GEOMETRY``, said so in its comments), so the result opens
  in Ptychodus;
- ``metrics.json`` (last): ``data_residual`` (of the stitched object in ``recon.npz``) and
  ``patch_residual`` (of the raw patches), and the ground-truth metrics when possible.

Every refusal is one line naming the file and key (exit 2), before any work: ``--refine
lsqml`` needs Pty-chi importable, and the stitching must fit in memory and inside the
ground truth (:mod:`ptycho_torch.pipeline.stitch_preflight`). The files are written into a
temporary folder that becomes ``--output-dir`` only when everything succeeded
(:func:`ptycho.artifacts.atomic_dir`): a failure or an interruption (exit 130 / 143)
leaves it absent, or as it was.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ptycho.artifacts import StudyLayout, atomic_dir, write_json_atomic
from ptycho.config.config import InferenceConfig
from ptycho.config.reconstruct_config import ReconstructConfig
from ptycho.config.validation import StudyError
from ptycho.evaluation import align_for_metrics, evaluate_reconstruction
from ptycho.formats import write_product
from ptycho.formats.model_units import check_parseval, read_in_model_units
from ptycho.plotting import object_pixel_m, save_reconstruction_figure, save_study_figures
from ptycho.study_metrics import StudyMetrics
from ptycho_torch.model.checkpoint import load_model
from ptycho_torch.core.residual import test_object_residuals
from ptycho_torch.engine.device import resolve_device
from ptycho_torch.engine.outputs import check_dir_target
from ptycho_torch.pipeline.polish import polish_with_lsqml
from ptycho_torch.core.precision import check_precision
from ptycho_torch.ptychi import IterativeUnavailableError, import_ptychi
from ptycho.reconstruction import reconstruction_record, save_reconstruction
from ptycho_torch.engine.inference import reconstruct_test_object
from ptycho_torch.pipeline.stitch_preflight import check_stitching
from ptycho.two_half_frc import two_half_frc
from ptycho_torch.engine.threads import apply_num_threads, threads_line

log = logging.getLogger(__name__)
OUTPUT_FILES = ("recon.npz", "product-out.h5", "metrics.json", "reconstruction.png")
# what a reconstruction writes into --output-dir; --overwrite replaces exactly these
OWNED_ENTRIES = (*OUTPUT_FILES, "refined", "visuals")


def check_scan(model, data, path: str) -> None:
    """Refuse a scan the model cannot take (one line naming file and key)."""
    mc = model.model_config
    if data.N != mc.N:
        raise StudyError(f"dataset '{path}': key 'diffraction' has pattern size N = {data.N} "
                         f"(expected N = {mc.N}, the model's) [flag --data]")
    if data.gridsize != mc.gridsize:
        raise StudyError(f"dataset '{path}': key 'diffraction' has gridsize {data.gridsize} "
                         f"(expected {mc.gridsize}, the model's) [flag --data]")
    if data.probe.shape[-2:] != (mc.N, mc.N):
        raise StudyError(f"dataset '{path}': key 'probeGuess' has shape {data.probe.shape} "
                         f"(expected ({mc.N}, {mc.N}) modes) [flag --data]")


def run_reconstruction(cfg: ReconstructConfig, inference: InferenceConfig) -> StudyMetrics:
    """Everything :mod:`ptycho_torch.pipeline.reconstruct` describes; returns the metrics record.

    Every check runs first (output directory, Pty-chi for ``--refine``, device, checkpoint,
    scan, stitching); the files are written into a temporary folder that becomes
    ``--output-dir`` only when everything succeeded (:func:`ptycho.artifacts.atomic_dir`).
    """
    t_start = time.perf_counter()
    out = _check_output_dir(cfg)
    if cfg.refine == "lsqml":
        check_refine_available()
    try:
        device = resolve_device(cfg.device)
    except ValueError as err:
        raise StudyError(f"{err} [flag --device]") from None
    threads = apply_num_threads(cfg.num_threads)
    model = load_model(cfg.checkpoint, device, trust=cfg.trust_checkpoint)
    if cfg.precision != "model":
        model.set_precision(cfg.precision)
    try:
        check_precision(model.precision, device)
    except ValueError as err:
        raise StudyError(f"{err} [flag --precision]") from None
    data = with_probe_source(cfg, model, _read_scan(cfg, model, inference))
    log.info(threads_line(*threads))
    try:
        check_stitching(data, inference)
        rec = reconstruct_test_object(model, data, inference)
    except ValueError as err:
        raise StudyError(f"{str(err).splitlines()[0]} [flag --data]") from None
    log.info("output folder: %s", out.resolve())
    sub = data.select(data.object_selection(0))
    residual, patch_residual = test_object_residuals(rec, data)
    polished = (polish_with_lsqml(data, rec, inference, epochs=cfg.refine_epochs, device=device)
                if cfg.refine == "lsqml" else None)

    # ---- all checks and all the work done: write ----
    with atomic_dir(out, owned=OWNED_ENTRIES) as tmp:
        save_reconstruction(tmp / "recon.npz", rec, scan=data)
        _write_product(tmp / "product-out.h5", cfg, data, sub, rec)
        m = reconstruction_record("reconstruction", "network", rec, residual, device,
                                  torch.get_num_threads(),
                                  patch_residual=patch_residual,
                                  architecture=model.model_config.architecture,
                                  normalisation=data.metadata.get("normalisation"),
                                  scan_scale=data.metadata.get("scan_scale"),
                                  input_scale=model.data_config.input_scale,
                                  note=f"checkpoint {cfg.checkpoint}; data {cfg.data}",
                                  two_half_frc=two_half_frc(rec.patches, sub.centres, inference,
                                                            rec.stitch_weights))
        m.figures = _score_and_plot(m, rec, StudyLayout(tmp, "reconstruction"), data, cfg.data,
                                    out)
        if polished is not None:
            _write_polished(cfg, tmp, out, sub, polished, m, device)
        m.total_time_s = time.perf_counter() - t_start
        write_json_atomic(tmp / "metrics.json", m.to_json())
    log.info("written: %s; reconstruction %s%s; figures %s", (out / "metrics.json").resolve(),
             (out / "recon.npz").resolve(), "" if polished is None else
             f"; refined (--refine {cfg.refine}) in {(out / 'refined').resolve()}",
             ", ".join(str(Path(f).resolve()) for f in m.figures))
    return m


def check_refine_available() -> None:
    """``--refine lsqml`` needs Pty-chi: refused in one line, before any work, without it."""
    try:
        import_ptychi()
    except IterativeUnavailableError as err:
        raise StudyError(f"ReconstructConfig.refine='lsqml' needs Pty-chi, which cannot be "
                         f"imported here ({err}) (allowed without it: 'none') "
                         "[flag --refine]") from None


def _write_polished(cfg: ReconstructConfig, tmp: Path, out: Path, sub, polished,
                    m: StudyMetrics, device: str) -> None:
    """``--refine lsqml``: ``refined/`` (recon.npz, metrics.json, the figures) and the
    product, rewritten with the polished object and probe; ``m`` notes where they are."""
    refined, rec, residual = polished
    folder = tmp / "refined"
    save_reconstruction(folder / "recon.npz", rec, scan=refined)
    _write_product(tmp / "product-out.h5", cfg, refined, sub, rec)
    r = reconstruction_record("reconstruction+lsqml", "refined", rec, residual, device,
                              torch.get_num_threads(),
                              engine="lsqml", epochs_completed=cfg.refine_epochs,
                              initialized_from="reconstruction",
                              note=f"Pty-chi LSQML from the network's object, object and probe "
                                   f"optimized; checkpoint {cfg.checkpoint}; data {cfg.data}")
    r.figures = _score_and_plot(r, rec, StudyLayout(folder, "reconstruction+lsqml"), refined,
                                cfg.data, out / "refined")
    write_json_atomic(folder / "metrics.json", r.to_json())
    m.note = f"{m.note}; polished by LSQML: refined/metrics.json (product-out.h5 holds it)"


def _check_output_dir(cfg: ReconstructConfig) -> Path:
    """The output directory, refused when it already holds a reconstruction (no --overwrite)."""
    out = Path(cfg.output_dir)
    check_dir_target("output_dir", out)
    done = [f for f in OUTPUT_FILES if (out / f).exists()]
    if done and not cfg.overwrite:
        raise StudyError(f"output_dir={str(out)!r} already holds a reconstruction ({done[0]}); "
                         "pass --overwrite to replace it or choose another --output-dir")
    return out


def with_probe_source(cfg: ReconstructConfig, model, data):
    """The scan with the probe of ``--probe-source``: the model's (what it trained with:
    the file's, refined or learned), or the scan file's own; the choice is logged. The scan's
    probe is already at the model probe's total intensity (:func:`_read_scan`), so either
    probe scores in the model's units."""
    if cfg.probe_source == "file":
        log.info("probe: the scan file's (--probe-source file)")
        return data
    out = with_model_probe(model, data, cfg.checkpoint, "scan's",
                           "; use --probe-source file", "--probe-source")
    log.info("probe: the model's (the one it trained with; --probe-source file uses the "
             "scan's)")
    return out


def with_model_probe(model, data, checkpoint, what: str, advice: str, flag: str):
    """``data`` with the probe the model trained with (in its checkpoint); refused in one
    line naming ``flag`` when its modes differ from the scan's probe."""
    probe = model.current_probe().cpu().numpy().astype(np.complex64)
    if probe.reshape(-1, *probe.shape[-2:]).shape != data.probe_modes.shape:
        raise StudyError(f"checkpoint '{checkpoint}': its probe has shape {probe.shape} "
                         f"but the {what} probeGuess {data.probe.shape} (expected the same "
                         f"modes{advice}) [flag {flag}]")
    return replace(data, probe=probe.reshape(data.probe.shape))


def _read_scan(cfg: ReconstructConfig, model, inference: InferenceConfig):
    """The scan of ``--data`` in the model's units (the scan-scale rule of
    :mod:`ptycho.formats.model_units`; the scale applied is logged and kept in the metadata
    for metrics.json), checked against the model; logs its amplitude level (and warns when
    it is far from the training data's)."""
    mc = model.model_config
    trained = 1.0 / model.data_config.input_scale
    try:
        data, scale = read_in_model_units(cfg.data, model.probe.detach().cpu().numpy(),
                                          gridsize=mc.gridsize, unit=cfg.data_unit,
                                          cxi_translation_sign=cfg.cxi_translation_sign)
    except ValueError as err:
        raise StudyError(f"{str(err).splitlines()[0]} [flag --data]") from None
    check_scan(model, data, cfg.data)
    try:
        r = check_parseval(cfg.data, data, scale, trained)
    except ValueError as err:
        raise StudyError(f"{err} [flag --data]") from None
    if inference.stitch_crop > mc.N:
        raise StudyError(f"InferenceConfig.stitch_crop={inference.stitch_crop} exceeds N={mc.N} "
                         f"(allowed: 0..{mc.N}) [flag --stitch-crop]")
    log.info("scan scale s = %.6g, %s", scale.photon_scale, scale.source)
    log.info("scan %s: %d patterns; amplitude RMS %.4g (training data: %.4g)", cfg.data,
             data.n, r * trained, trained)
    if not 0.25 <= r <= 4:
        log.warning("the scan's amplitudes are %.2gx those the model was trained on, with its "
                    "probe at the model's intensity; check the unit (--data-unit) and the "
                    "normalisation (docs/reference/formats.md)", r)
    return data


def _write_product(path: Path, cfg: ReconstructConfig, data, sub, rec) -> None:
    """The Ptychodus product: positions relative to the reconstruction's corner."""
    geometry = data.metadata.get("geometry") or {}
    pix = geometry.get("object_pixel_m_yx")
    origin = np.asarray(data.metadata.get("position_origin_px", [0.0, 0.0]), dtype=np.float64)
    centres = sub.centres.reshape(-1, 2).astype(np.float64)
    positions = centres - np.array([rec.region[1], rec.region[0]], dtype=np.float64)
    write_product(path, rec.recon, data.probe_modes, positions,
                  object_pixel_m=tuple(pix) if pix else None,
                  detector_distance_m=geometry.get("detector_distance_m"),
                  photon_energy_eV=geometry.get("photon_energy_eV"),
                  name=Path(cfg.data).stem,
                  comments=f"ptychopinn-torch reconstruction of {cfg.data} with {cfg.checkpoint}; "
                           f"positions relative to the reconstruction's corner (file origin "
                           f"shift {origin.tolist()} px)")


def _score_and_plot(m: StudyMetrics, rec, layout: StudyLayout, data, data_path: str,
                    final: Path) -> list[str]:
    """The figures (their paths as they will be under ``final``, where the folder being
    written, ``layout.output_dir``, goes; scale bars in nm / µm where the scan ``data``
    gives its pixel size); with a ground truth, also its scores into ``m`` and the
    comparison."""
    out, pixel = layout.output_dir, object_pixel_m(data.metadata)
    figures = [save_reconstruction_figure(out / "reconstruction.png", rec.recon,
                                          title=f"{Path(data_path).name}", label=m.model_id,
                                          pixel_size_m=pixel)]
    if rec.ground_truth is not None:
        result = evaluate_reconstruction(rec.recon, rec.ground_truth)
        m.set_scores(result)
        amp, amp_gt, ph, ph_gt = align_for_metrics(rec.recon, rec.ground_truth)
        figures += save_study_figures(layout.visuals_dir, "reconstruction", amp_gt, ph_gt, amp,
                                      ph, result["frc"], title=f"{m.model_id} vs ground truth",
                                      label=m.model_id, pixel_size_m=pixel)
    return [str(final / Path(f).relative_to(out)) for f in figures]
