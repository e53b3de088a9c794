"""One cell of the sweep per (method, dose): training or reuse, inference, transfer,
best-validation, iterative and refined rows."""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ptycho.artifacts import StudyLayout, write_json_atomic
from ptycho.config.study_config import StudyConfig
from ptycho.study_metrics import StudyMetrics
from ptycho_torch.model.checkpoint import load_model
from ptycho_torch.core.residual import test_object_residuals
from ptycho_torch.engine.device import resolve_device
from ptycho_torch.ptychi import import_ptychi
from ptycho_torch.ptychi.baseline import iterative_reconstruction
from ptycho_torch.ptychi.engine import PtychiOptions, reconstruct
from ptycho_torch.ptychi.scan import scan_for_ptychi
from ptycho_torch.ptychi.start import start_from_patches
from ptycho.reconstruction import reconstruction_record, score, score_record, stitch_options
from ptycho_torch.engine.inference import reconstruct_test_object
from ptycho_torch.studies.common import (
    data_key,
    iterative_key,
    plan_study,
    refined_key,
    row_stamp,
)
from ptycho_torch.studies.dose.config import DoseConfig
from ptycho_torch.studies.rows import finished_row, metrics_row, reuse_or_compute
from ptycho_torch.studies.dose.rules import SELECTION_METRIC, format_dose, heldout_curve
from ptycho_torch.studies.methods import (
    iterative_row,
    network_patches,
    refine_states,
    refined_row,
    save_row,
)
from ptycho.inputs import load_test_data
from ptycho.two_half_frc import two_half_frc

log = logging.getLogger(__name__)


@dataclass
class Row:
    """One (method, dose) cell's record and where it lives."""

    method: str
    dose: float
    metrics: StudyMetrics
    layout: StudyLayout
    selection: dict | None = None

    def to_json(self, root: Path) -> dict:
        try:
            cell = str(self.layout.run_dir.relative_to(root))
        except ValueError:
            cell = str(self.layout.run_dir)
        extra = {"selection": self.selection} if self.selection is not None else {}
        return {"method": self.method, "nphotons": self.dose, "cell": cell, **extra,
                **self.metrics.to_json()}


def iterative_keys(dc: DoseConfig, dose: float, engine: str) -> dict:
    cfg, m = dc.study(dose), dc.methods
    common = (cfg, engine, m.iterative_epochs, m.iterative_batch_size)
    return {"": iterative_key(*common),
            "@heldout": iterative_key(*common, rule="heldout", every=dc.heldout_every,
                                      heldout_fraction=dc.heldout_fraction,
                                      criterion=SELECTION_METRIC),
            "@oracle": iterative_key(*common, rule="oracle", every=dc.heldout_every)}


def plan_sweep(dc: DoseConfig) -> dict:
    """Every read-only check before anything runs; ``{(dose, arch): 'reuse' | 'run'}``."""
    if dc.methods.iterative or dc.methods.refine:
        import_ptychi()
    plan = {(d, a): plan_study(dc.study(d, a)) for d in dc.doses for a in dc.methods.architectures}
    for d in dc.doses:
        for engine in dc.methods.iterative:
            for suffix, key in iterative_keys(dc, d, engine).items():
                finished_row(metrics_row(StudyLayout(dc.dose_dir(d), f"ptychi_{engine}{suffix}"),
                                         key), dc.base.run.overwrite)
    return plan


def inference_row(model_id: str, model, test, cfg: StudyConfig, source: StudyMetrics,
                  key: dict, note: str, epochs: int | None, device: str):
    """Predict, stitch and score ``test`` with a loaded network; ``(record, reconstruction)``."""

    rec = reconstruct_test_object(model, test, cfg.inference)
    residual, patch_residual = test_object_residuals(rec, test)
    m = reconstruction_record(model_id, "network", rec, residual, device,
                              torch.get_num_threads(),
                              patch_residual=patch_residual, architecture=source.architecture,
                              n_parameters=source.n_parameters, epochs_completed=epochs,
                              train_time_s=source.train_time_s,
                              n_train_patterns=source.n_train_patterns,
                              n_val_patterns=source.n_val_patterns,
                              input_scale=float(model.data_config.input_scale),
                              compare_key=key, note=note, torch_version=torch.__version__,
                              two_half_frc=two_half_frc(
                                  rec.patches, test.select(test.object_selection(0)).centres,
                                  cfg.inference, rec.stitch_weights))
    score_record(m, rec)
    return m, rec


def best_val_checkpoint(layout: StudyLayout) -> tuple[Path, int] | None:
    """The run's best-by-validation-loss checkpoint (``.work/<id>/checkpoints/epochNNN.ckpt``)
    and its 0-based epoch; with several, the lowest ``val_loss`` in history.json."""
    ckpts = sorted((layout.work_dir / "checkpoints").glob("epoch*.ckpt"))
    if not ckpts:
        return None
    epochs = [int(p.stem[len("epoch"):]) for p in ckpts]
    if len(ckpts) > 1:
        try:
            h = json.loads((layout.run_dir / "history.json").read_text())
            val = dict(zip(h["epoch"], h["val_loss"]))
            i = int(np.nanargmin([float(val.get(e, math.nan)) for e in epochs]))
        except (OSError, ValueError, KeyError, TypeError):
            i = len(ckpts) - 1
        return ckpts[i], epochs[i]
    return ckpts[0], epochs[0]


class _TestData:
    """Each dose's test scan, read once and only when a cell needs it."""

    def __init__(self, dc: DoseConfig):
        self.dc, self.cache = dc, {}

    def __call__(self, dose: float):
        if dose not in self.cache:
            self.cache[dose] = load_test_data(self.dc.study(dose))[0]
        return self.cache[dose]


def best_val_row(dc: DoseConfig, dose: float, arch: str, source: StudyMetrics, tests,
                 device: str) -> Row | None:
    cfg = dc.study(dose, arch)
    src = StudyLayout(dc.dose_dir(dose), cfg.model_id)
    layout = StudyLayout(dc.dose_dir(dose), f"{cfg.model_id}@bestval")
    key = {"source": cfg.model_id, "source_stamp": row_stamp(src), "inference": cfg.inference.to_dict()}

    def compute() -> StudyMetrics | None:
        best = best_val_checkpoint(src)
        if best is None:
            log.warning("%s: no best-validation checkpoint under %s; row skipped",
                        layout.model_id, src.work_dir)
            return None
        path, epoch = best
        note = (f"checkpoint with the lowest validation loss (epoch {epoch + 1} of "
                f"{source.epochs_completed})")
        model = load_model(str(path), device, trust=cfg.run.trust_checkpoint)
        m, rec = inference_row(layout.model_id, model, tests(dose), cfg, source,
                               key, note, epoch + 1, device)
        return save_row(layout, m, rec, scan=tests(dose))
    m = reuse_or_compute(metrics_row(layout, key), compute, overwrite=cfg.run.overwrite,
                         refuse=False)
    return None if m is None else Row(layout.model_id, dose, m, layout)


def transfer_rows(dc: DoseConfig, arch: str, finals: dict, tests, device: str) -> list[Row]:
    """The network trained at ``dc.transfer_from`` applied to every dose's test scan."""
    d0 = dc.transfer_from
    src_cfg = dc.study(d0, arch)
    src = StudyLayout(dc.dose_dir(d0), src_cfg.model_id)
    name = f"{src_cfg.model_id}@{format_dose(d0)}"
    rows, model = [], []   # the source network, loaded once when a row needs it
    for dose in dc.doses:
        cfg = dc.study(dose, arch)
        layout = StudyLayout(dc.dose_dir(dose), name)
        key = {"source": f"{dc.dose_dir(d0).name}/runs/{src.model_id}",
               "source_stamp": row_stamp(src), "data": data_key(cfg),
               "inference": cfg.inference.to_dict()}

        def compute(dose=dose, cfg=cfg, layout=layout, key=key) -> StudyMetrics:
            if not model:
                model.append(load_model(str(src.run_dir / "model.ckpt"), device,
                                        trust=src_cfg.run.trust_checkpoint))
            note = f"network trained at {format_dose(d0)} photons applied at {format_dose(dose)}"
            m, rec = inference_row(name, model[0], tests(dose), cfg, finals[(d0, arch)], key,
                                   note, finals[(d0, arch)].epochs_completed, device)
            return save_row(layout, m, rec, scan=tests(dose))
        m = reuse_or_compute(metrics_row(layout, key), compute, overwrite=cfg.run.overwrite, refuse=False)
        rows.append(Row(name, dose, m, layout))
    return rows


def iterative_rows(dc: DoseConfig, dose: float, engine: str, tests) -> list[Row]:
    """``ptychi_<engine>`` (fixed epochs), ``@heldout`` (epoch by the held-out residual) and
    ``@oracle`` (epoch by ground-truth phase PSNR) from one full-scan run, continued in chunks."""
    keys = iterative_keys(dc, dose, engine)
    layouts = {s: StudyLayout(dc.dose_dir(dose), f"ptychi_{engine}{s}") for s in keys}
    return _group(dose, layouts, keys, lambda: _iterative_run(dc, dose, engine, tests(dose),
                                                              keys, layouts),
                  overwrite=dc.base.run.overwrite, refuse=True)


def _group(dose: float, layouts: dict, keys: dict, compute, **reuse) -> list[Row]:
    """Rows computed together (one Pty-chi run gives them all): every one finished with its
    key, else all of them computed; each with its ``selection.json``."""
    records = reuse_or_compute([metrics_row(layouts[s], keys[s]) for s in keys], compute,
                               **reuse)
    return [Row(layouts[s].model_id, dose, m, layouts[s], _read_selection(layouts[s]))
            for s, m in zip(keys, records)]


def _iterative_run(dc: DoseConfig, dose: float, engine: str, test, keys: dict,
                   layouts: dict) -> list[StudyMetrics]:
    cfg, m = dc.study(dose), dc.methods
    device = resolve_device(cfg.training.device)
    seed, bs = cfg.training.seed, m.iterative_batch_size or None
    scan = scan_for_ptychi(test, 0)
    log.info("ptychi_%s at %s photons: held-out run, then %d epochs on the full scan", engine,
             format_dose(dose), m.iterative_epochs)
    sel = heldout_curve(engine, scan, test.probe, epochs=m.iterative_epochs,
                        every=dc.heldout_every, fraction=dc.heldout_fraction, batch_size=bs,
                        device=device, seed=seed, bad_pixels=test.bad_pixels)
    options = PtychiOptions(engine, epochs=m.iterative_epochs, batch_size=bs, device=device,
                            seed=seed)
    res, states = reconstruct(scan, options, every=dc.heldout_every)

    def rec_at(i):
        _, obj, t = states[i]
        return iterative_reconstruction(test, obj, time_s=t, n_patterns=res.n_patterns,
                                        batch_size=res.batch_size, inference=cfg.inference)

    epochs = [e for e, _, _ in states]
    oracle = None
    if test.ground_truth is not None:
        psnr = [score(rec_at(i))[0]["metrics"]["psnr"][1] for i in range(len(states))]
        oracle = {"criterion": "ground-truth phase PSNR", "epochs": epochs, "phase_psnr": psnr,
                  "selected_epoch": epochs[int(np.nanargmax(psnr))]}
    picks = {"": (len(states) - 1, None, "fixed epochs"),
             "@heldout": (epochs.index(sel["selected_epoch"]), sel,
                          f"epoch {sel['selected_epoch']} chosen by the held-out "
                          f"{SELECTION_METRIC} ({sel['n_heldout']} of "
                          f"{sel['n_heldout'] + sel['n_kept']} positions held out, every "
                          f"{dc.heldout_every} epochs)")}
    if oracle is not None:
        picks["@oracle"] = (epochs.index(oracle["selected_epoch"]), oracle,
                            f"oracle: epoch {oracle['selected_epoch']} has the best "
                            "ground-truth phase PSNR (not a ground-truth-free baseline)")
    rows = []
    for s, (i, selection, what) in picks.items():
        rec = rec_at(i)
        row = iterative_row(layouts[s].model_id, engine, rec, test, epochs=epochs[i],
                            device=res.device, key=keys[s], loss=res.loss[:epochs[i]],
                            note=f"Pty-chi, known probe and positions; {what}; inference s = "
                                 "the full-scan run up to that epoch")
        if selection is not None:
            row.total_time_s = rec.inference_time_s + (sel["time_s"] if s == "@heldout" else 0.0)
            write_json_atomic(layouts[s].run_dir / "selection.json", selection)
        rows.append(save_row(layouts[s], row, rec, scan=test))
    return rows


def refined_rows(dc: DoseConfig, dose: float, source: Row, checkpoint: Path, engine: str,
                 tests, device: str) -> list[Row]:
    """``<source>+<engine>`` (``--refine-epochs``) and ``<source>+<engine>@heldout`` (epoch
    0..refine_epochs by the held-out residual; the selection run starts from the network's
    object built from the kept patterns only): Pty-chi started at a network row's object."""
    cfg, m = dc.study(dose), dc.methods
    K, bs = m.refine_epochs, m.iterative_batch_size
    every = min(dc.heldout_every, K)
    keys = {"": refined_key(cfg, engine, K, bs, source.layout),
            "@heldout": refined_key(cfg, engine, K, bs, source.layout, rule="heldout", every=every,
                                    heldout_fraction=dc.heldout_fraction,
                                    criterion=SELECTION_METRIC)}
    name = f"{source.method}+{engine}"
    layouts = {s: StudyLayout(dc.dose_dir(dose), name + s) for s in keys}
    return _group(dose, layouts, keys, lambda: _refined_run(dc, dose, source, checkpoint, engine,
                                                            tests(dose), device, keys, layouts),
                  overwrite=cfg.run.overwrite, refuse=False)


def _refined_run(dc: DoseConfig, dose: float, source: Row, checkpoint: Path, engine: str, test,
                 device: str, keys: dict, layouts: dict) -> list[StudyMetrics]:
    cfg, m = dc.study(dose), dc.methods
    K, bs = m.refine_epochs, m.iterative_batch_size
    every = min(dc.heldout_every, K)
    name = f"{source.method}+{engine}"
    scan = scan_for_ptychi(test, 0)
    patches, centres, ids = network_patches(checkpoint, test, cfg, device)
    options = stitch_options(cfg.inference, scan.N)
    log.info("%s at %s photons: held-out run, then %d epochs from the network's object", name,
             format_dose(dose), K)
    sel = heldout_curve(engine, scan, test.probe, epochs=K, every=every,
                        fraction=dc.heldout_fraction, batch_size=bs or None, device=device,
                        seed=cfg.training.seed, bad_pixels=test.bad_pixels,
                        start=lambda kept: start_from_patches(patches, centres, kept, options,
                                                             pattern_ids=ids))
    res, states, init = refine_states(engine, patches, centres, ids, scan, cfg, epochs=K,
                                      every=every, batch_size=bs, device=device)
    states = [(0, init, 0.0)] + states
    epochs = [e for e, _, _ in states]
    picks = {"": (len(states) - 1, None, f"{K} epochs"),
             "@heldout": (epochs.index(sel["selected_epoch"]), sel,
                          f"epoch {sel['selected_epoch']} chosen by the held-out "
                          f"{SELECTION_METRIC} (epoch 0 = the network's object)")}
    rows = []
    for s, (i, selection, what) in picks.items():
        _, obj, t = states[i]
        rec = iterative_reconstruction(test, obj, time_s=t, n_patterns=res.n_patterns,
                                       batch_size=res.batch_size, inference=cfg.inference)
        row = refined_row(layouts[s].model_id, engine, rec, test, source.metrics,
                          epochs=epochs[i], device=res.device, key=keys[s],
                          loss=res.loss[:epochs[i]], what=what)
        if selection is not None:
            row.total_time_s += sel["time_s"]
            write_json_atomic(layouts[s].run_dir / "selection.json", selection)
        rows.append(save_row(layouts[s], row, rec, scan=test))
    return rows


def refine_source_ids(dc: DoseConfig, arch: str) -> dict[str, float | None]:
    """The network rows refined rows start from, each with the dose its network was trained
    at (None: the row's own dose): ``pinn_<arch>`` and the transfer row."""
    ids: dict[str, float | None] = {f"pinn_{arch}": None}
    if dc.transfer_from is not None:
        ids[f"pinn_{arch}@{format_dose(dc.transfer_from)}"] = dc.transfer_from
    return ids


def refine_sources(dc: DoseConfig, dose: float, rows: list[Row]) -> list[tuple[Row, Path]]:
    """The network rows at ``dose`` that refined rows start from, with their checkpoints."""
    out = []
    for arch in dc.methods.architectures:
        ids = refine_source_ids(dc, arch)
        for r in rows:
            if r.dose == dose and r.method in ids:
                trained_at = dose if ids[r.method] is None else ids[r.method]
                out.append((r, StudyLayout(dc.dose_dir(trained_at), f"pinn_{arch}").run_dir
                            / "model.ckpt"))
    return out


def _read_selection(layout: StudyLayout) -> dict | None:
    try:
        return json.loads((layout.run_dir / "selection.json").read_text())
    except (OSError, ValueError):
        return None
