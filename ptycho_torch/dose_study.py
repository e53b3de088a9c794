"""Dose study: networks against Pty-chi over photons per pattern (the ``ptycho-dose-study`` CLI).

:func:`main` is the entry point (``scripts/studies/dose_study.py`` only calls it). For each
dose in ``--nphotons-list`` the grid-lines dataset is simulated with the same objects, scan
and seeds (only ``nphotons`` changes, hence only the Poisson noise), and every (method, dose)
cell is written in its own folder ``<out>/dose_<value>/runs/<method>/`` (reconstruction in
``recons/<method>/``; one shared dataset cache ``<out>/datasets``). Methods per dose:

* ``pinn_<arch>``           each ``--architectures`` network trained at this dose, final weights;
  loss by :func:`loss_for_dose` (Poisson NLL below 1e6 photons, amplitude MAE at and above)
  unless ``--loss`` is given on the command line;
* ``pinn_<arch>@bestval``   the same run's checkpoint with the lowest validation loss (the
  validation split is held out of the training patterns: no ground truth involved);
* ``pinn_<arch>@<dose0>``   the network trained at ``--transfer-from`` (default: the highest
  dose <= 1e4 in the list) applied to this dose's test scan (one model for every dose);
* ``ptychi_<engine>``        Pty-chi at the fixed ``--iterative-epochs``;
* ``ptychi_<engine>@heldout`` Pty-chi at the epoch chosen without ground truth: ~10 % of the
  scan positions (seeded) are held out, the rest reconstructed, and the held-out patterns'
  Poisson residual evaluated every ``--heldout-every`` epochs (:func:`heldout_curve`); the
  full-scan reconstruction at the epoch of the lowest held-out residual is reported
  (:func:`select_epoch`);
* ``ptychi_<engine>@oracle``  the full-scan checkpoint with the best ground-truth phase PSNR
  (an upper bound for any epoch rule; not a fair baseline).

Outputs in ``<out>``: ``dose_study.json`` / ``.md`` (one row per (method, dose), every metric
of the comparison table; the crossover), ``dose_study.png`` (metrics against dose) and
``dose_grid.png`` (phase, method by dose). An interrupted sweep continues per cell: finished
cells with the same settings are reused (``--resume`` continues a training cut short).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptycho.artifacts import StudyLayout, write_json_atomic, write_text_atomic
from ptycho.config.cli import build_parser as build_config_parser
from ptycho.config.cli import config_from_values, parse_known
from ptycho.config.config import StudyConfig
from ptycho.config.validation import StudyError
from ptycho.evaluation import align_for_metrics
from ptycho.plotting import dose_curves_figure, image_grid_figure, save_stacked_figures
from ptycho.study_metrics import StudyMetrics, format_number, metrics_table
from ptycho_torch.comparison import (
    Methods,
    add_method_flags,
    configure_logging,
    data_key,
    default_output_dir,
    iterative_key,
    iterative_row,
    load_test_data,
    network_patches,
    plan_study,
    pop_methods,
    refine_states,
    refined_key,
    refined_row,
    refuse,
    reusable_row,
    row_stamp,
    run_or_reuse,
    save_row,
    settings_line,
    split_list,
)
from ptycho_torch.data_residual import data_residual, test_object_residuals
from ptycho_torch.engine.device import apply_num_threads, resolve_device
from ptycho_torch.object_patches import object_patches
from ptycho_torch.ptychi import IterativeUnavailableError, import_ptychi
from ptycho_torch.ptychi.baseline import iterative_reconstruction
from ptycho_torch.ptychi.engine import run_ptychi_chunks
from ptycho_torch.ptychi.scan import scan_for_ptychi, subset_scan
from ptycho_torch.ptychi.start import start_from_patches
from ptycho_torch.reconstruct import load_model
from ptycho_torch.reconstruction import reconstruct_test_object, score, stitch_options

log = logging.getLogger(__name__)

DEFAULT_DOSES = "1e2,1e3,1e4,1e5,1e9"
POISSON_BELOW = 1e6          # loss rule: Poisson NLL below this many photons, MAE at and above
TRANSFER_MAX = 1e4           # default --transfer-from: the highest listed dose <= this
SELECTION_METRIC = "poisson_nll"   # held-out residual that picks the iterative epoch
# (label, StudyMetrics key, channel, JSON name) of the crossover and the dose figure
DOSE_METRICS = (("amplitude PSNR (dB)", "psnr", 0, "amplitude_psnr"),
                ("phase PSNR (dB)", "psnr", 1, "phase_psnr"),
                ("amplitude FRC50 (cycles/pixel)", "frc50", 0, "amplitude_frc50"),
                ("phase FRC50 (cycles/pixel)", "frc50", 1, "phase_frc50"))
def format_dose(v: float) -> str:
    """``1e3``, ``2.5e4``: the dose in folder and method names."""
    return np.format_float_scientific(float(v), trim="-", exp_digits=1).replace("+", "")


RULES = {
    "loss": f"networks train with the Poisson NLL below {format_dose(POISSON_BELOW)} photons per "
            "pattern "
            "and with the amplitude MAE at and above, unless --loss is given on the command line",
    "network_checkpoint": "pinn_<arch> rows use the final weights; pinn_<arch>@bestval rows the "
                          "checkpoint with the lowest validation loss (validation patterns are "
                          "held out of the training scan)",
    "iterative_epoch": "ptychi_<engine>@heldout: a seeded heldout_fraction of the scan positions "
                       "is held out, the rest reconstructed; every heldout_every epochs the "
                       f"held-out patterns' {SELECTION_METRIC} (data_residual of the object's "
                       "patches there) is evaluated; the full-scan reconstruction at the epoch "
                       "with the lowest value (earliest on ties) is reported",
    "oracle": "ptychi_<engine>@oracle: the full-scan checkpoint with the best ground-truth phase "
              "PSNR (uses the ground truth: an upper bound, not a baseline)",
    "transfer": "pinn_<arch>@<dose>: the network trained at that dose applied to every dose's "
                "test scan with its own input scale (amplitudes sqrt(counts)/s are in the same "
                "units at every dose)",
    "refined": "<network>+<engine>: Pty-chi <engine> started at that network row's object "
               "(pinn_<arch> and the transfer row) for refine_epochs; "
               "<network>+<engine>@heldout: the epoch (0 = the network's object, then every "
               "min(heldout_every, refine_epochs)) chosen by the same held-out rule, its "
               "selection run started from the network's object stitched from the kept "
               "positions' patterns only",
    "crossover": "per metric, the best network row (every pinn_* row without '+') minus the best "
                 "ground-truth-free iterative row (ptychi_<engine> and @heldout) at each dose, "
                 "interpolated linearly in log10(dose) to its first sign change",
}


# ------------------------------------------------------------------------ rules
def loss_for_dose(nphotons: float) -> str:
    """The default training loss at ``nphotons`` photons per pattern."""
    return "poisson" if float(nphotons) < POISSON_BELOW else "mae"


def select_epoch(epochs, residuals) -> int:
    """The epoch with the lowest finite residual (the earliest on ties)."""
    r = np.asarray(residuals, dtype=float)
    ok = np.flatnonzero(np.isfinite(r))
    if len(epochs) != len(r) or ok.size == 0:
        raise ValueError(f"no finite held-out residual among {len(r)} evaluations")
    return int(np.asarray(epochs)[ok[np.argmin(r[ok])]])


def heldout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(kept, held_out)`` indices of ``n`` positions (at least one in each)."""
    if n < 2:
        raise ValueError(f"the scan has {n} position(s); at least 2 are needed to hold one out")
    n_h = min(max(1, round(n * fraction)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_h:]), np.sort(perm[:n_h])


def heldout_residuals(scan, held: np.ndarray, objects, probe, bad_pixels=None) -> dict:
    """Residuals of each object (H, W) on the held-out patterns of a PtychiScan:
    ``{"amplitude_mae": [...], "poisson_nll": [...]}`` (``ptycho_torch.data_residual``)."""
    s = scan.photon_scale
    amps = (np.sqrt(scan.patterns[held].astype(np.float64)) / s).astype(np.float32)[:, None]
    centres = scan.positions_xy[held][:, None, :]
    out = {"amplitude_mae": [], "poisson_nll": []}
    for obj in objects:
        r = data_residual(object_patches(obj, centres, scan.N), amps, probe, photon_scale=s,
                          bad_pixels=bad_pixels)
        out["amplitude_mae"].append(r["amplitude_mae"])
        out["poisson_nll"].append(r["poisson_nll"])
    return out


def heldout_curve(engine: str, scan, probe, *, epochs: int, every: int, fraction: float,
                  batch_size: int | None, device: str, seed: int, bad_pixels=None,
                  start=None) -> dict:
    """Reconstruct the scan without a held-out subset of positions and evaluate the held-out
    residual every ``every`` epochs; ``selected_epoch`` is :func:`select_epoch` of
    :data:`SELECTION_METRIC`. ``start``: a function of the kept positions' scan that
    returns the starting object (a refined row: the network's object built from the kept
    patterns only); epoch 0, the start itself, is then evaluated too."""
    kept, held = heldout_split(scan.patterns.shape[0], fraction, seed)
    kept_scan = subset_scan(scan, kept)
    init = None if start is None else start(kept_scan)
    res, states = run_ptychi_chunks(engine, kept_scan, epochs=epochs, every=every,
                                    batch_size=batch_size, device=device, seed=seed,
                                    initial_object=init)
    if init is not None:
        states = [(0, init, 0.0)] + states
    curve = heldout_residuals(scan, held, [obj for _, obj, _ in states], probe, bad_pixels)
    ep = [e for e, _, _ in states]
    return {"criterion": SELECTION_METRIC, "epochs": ep, **curve,
            "selected_epoch": select_epoch(ep, curve[SELECTION_METRIC]),
            "n_heldout": int(held.size), "n_kept": int(kept.size), "time_s": res.time_s}


def crossover(doses, network, iterative) -> dict:
    """Where ``network - iterative`` changes sign, by linear interpolation in log10(dose).

    ``dose``: the first crossing (lowest dose), or None with ``reason`` ("network below at
    every dose", "network above at every dose", or too few finite values); ``crossings``
    lists every crossing.
    """
    x = np.log10(np.asarray(doses, dtype=float))
    d = np.asarray(network, dtype=float) - np.asarray(iterative, dtype=float)
    ok = np.isfinite(d) & np.isfinite(x)
    xs, ds = x[ok], d[ok]
    out = {"dose": None, "reason": None, "crossings": [],
           "network_minus_iterative": [None if not math.isfinite(v) else float(v) for v in d]}
    if xs.size == 0:
        out["reason"] = "no dose with finite values for both"
        return out
    crossings = []
    for i in range(xs.size):
        if ds[i] == 0:
            crossings.append(float(10 ** xs[i]))
        elif i + 1 < xs.size and ds[i] * ds[i + 1] < 0:
            t = ds[i] / (ds[i] - ds[i + 1])
            crossings.append(float(10 ** (xs[i] + t * (xs[i + 1] - xs[i]))))
    out["crossings"] = crossings
    if crossings:
        out["dose"] = crossings[0]
    elif (ds > 0).all():
        out["reason"] = "network above at every dose"
    else:
        out["reason"] = "network below at every dose"
    return out


# ----------------------------------------------------------------------- config
@dataclass(frozen=True)
class DoseConfig:
    """The sweep: a base study config (its nphotons and architecture are replaced per cell)."""

    base: StudyConfig
    doses: tuple[float, ...]
    methods: Methods
    loss: str | None = None            # --loss given on the command line, else the rule
    transfer_from: float | None = None
    heldout_fraction: float = 0.1
    heldout_every: int = 10

    @property
    def output_dir(self) -> Path:
        return Path(self.base.run.output_dir)

    def dose_dir(self, dose: float) -> Path:
        return self.output_dir / f"dose_{format_dose(dose)}"

    def study(self, dose: float, architecture: str | None = None) -> StudyConfig:
        """The study config of one cell (``<out>/dose_<value>``, shared dataset cache)."""
        arch = architecture or self.methods.architectures[0]
        cache = self.base.run.cache_dir or str(self.output_dir / "datasets")
        return self.base.replace(nphotons=float(dose), architecture=arch,
                                 loss=self.loss or loss_for_dose(dose),
                                 output_dir=str(self.dose_dir(dose)), cache_dir=cache)


def parse_doses(text: str) -> tuple[float, ...]:
    items = split_list(text)
    if not items:
        raise StudyError("--nphotons-list is empty (allowed: comma-separated photons per "
                         "pattern, e.g. 1e2,1e3,1e4)")
    doses = []
    for t in items:
        try:
            v = float(t)
        except ValueError:
            raise StudyError(f"--nphotons-list: {t!r} is not a number (allowed: comma-separated "
                             "positive numbers, e.g. 1e2,1e3,1e4)") from None
        if not (math.isfinite(v) and 0 < v <= 1e15):
            raise StudyError(f"--nphotons-list: {t} is out of range (allowed: > 0 and <= 1e15)")
        doses.append(v)
    if len(set(doses)) != len(doses):
        raise StudyError(f"--nphotons-list lists a dose twice ({text})")
    return tuple(sorted(doses))


def parse_transfer(text, doses) -> float | None:
    if text is None:
        low = [d for d in doses if d <= TRANSFER_MAX]
        return max(low) if low else None
    if str(text).strip().lower() in ("", "none"):
        return None
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if v not in doses:
        raise StudyError(f"--transfer-from={text} is not in --nphotons-list (allowed: one of "
                         f"{', '.join(format_dose(d) for d in doses)}, or none)")
    return v


def build_parser(prog: str = "dose_study.py") -> argparse.ArgumentParser:
    p = build_config_parser(prog, "Networks against Pty-chi over photons per pattern: simulate "
                            "each dose (same objects, scan and seeds), train every architecture, "
                            "reconstruct with Pty-chi, and write dose_study.md / .json / .png.",
                            exclude=("architecture", "nphotons"))
    add_method_flags(p, "hybrid,fno", "lsqml-poisson,epie", title="dose study")
    g = p.add_argument_group("dose sweep")
    g.add_argument("--nphotons-list", default=DEFAULT_DOSES,
                   help="comma-separated photons per pattern, one cell folder each")
    g.add_argument("--transfer-from", default=None,
                   help="apply the networks trained at this dose to every dose (default: the "
                        f"highest listed dose <= {TRANSFER_MAX:g}; none: no transfer rows)")
    g.add_argument("--heldout-fraction", type=float, default=0.1,
                   help="fraction of scan positions held out to choose the Pty-chi epoch")
    g.add_argument("--heldout-every", type=int, default=10,
                   help="evaluate the held-out residual every this many Pty-chi epochs")
    return p


def config_from_argv(argv=None) -> DoseConfig:
    """Parse and validate everything (raises a one-line ValueError)."""
    values = parse_known(build_parser(), argv)
    methods = pop_methods(values)
    doses = parse_doses(values.pop("nphotons_list"))
    transfer = parse_transfer(values.pop("transfer_from"), doses)
    frac, every = values.pop("heldout_fraction"), values.pop("heldout_every")
    if not (math.isfinite(frac) and 0 < frac <= 0.5):
        raise StudyError(f"--heldout-fraction={frac} is out of range (allowed: > 0 and <= 0.5)")
    if every < 1:
        raise StudyError(f"--heldout-every={every} is out of range (allowed: >= 1)")
    default_output_dir(values, "dose_study")
    base = config_from_values(values)
    if not base.simulated:
        raise StudyError("the dose study simulates its datasets (only nphotons changes between "
                         "doses) (allowed: no --train-npz) [flag --train-npz]")
    dc = DoseConfig(base=base, doses=doses, methods=methods, loss=values.get("loss"),
                    transfer_from=transfer, heldout_fraction=float(frac), heldout_every=int(every))
    for d in doses:  # every cell's config is valid before anything runs
        for a in methods.architectures:
            dc.study(d, a)
    return dc


# ------------------------------------------------------------------------ cells
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
                reusable_row(StudyLayout(dc.dose_dir(d), f"ptychi_{engine}{suffix}"), key,
                             dc.base.run.overwrite)
    return plan


def inference_row(model_id: str, model, test, cfg: StudyConfig, source: StudyMetrics,
                  key: dict, note: str, epochs: int | None, device: str):
    """Predict, stitch and score ``test`` with a loaded network; ``(record, reconstruction)``."""
    import torch

    rec = reconstruct_test_object(model, test, cfg.inference)
    residual, patch_residual = test_object_residuals(rec, test)
    m = StudyMetrics(model_id=model_id, kind="network", ground_truth=rec.ground_truth is not None,
                     data_residual=residual, patch_residual=patch_residual, stitch=rec.stitch,
                     region=list(rec.region),
                     n_test_patterns_scored=rec.n_patterns, inference_time_s=rec.inference_time_s,
                     inference_patterns_per_s=rec.n_patterns / max(rec.inference_time_s, 1e-9),
                     infer_batch_size_used=rec.infer_batch_size, stitch_time_s=rec.stitch_time_s,
                     device=str(device), architecture=source.architecture,
                     n_parameters=source.n_parameters, epochs_completed=epochs,
                     train_time_s=source.train_time_s, n_train_patterns=source.n_train_patterns,
                     n_val_patterns=source.n_val_patterns,
                     input_scale=float(model.data_config.input_scale), compare_key=key, note=note,
                     torch_version=torch.__version__)
    if rec.ground_truth is not None:
        m.set_scores(score(rec)[0])
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
    key = {"source": cfg.model_id, "source_stamp": row_stamp(src),
           "inference": cfg.inference.to_dict()}
    old = reusable_row(layout, key, cfg.run.overwrite, refuse=False)
    if old is not None:
        return Row(layout.model_id, dose, old, layout)
    best = best_val_checkpoint(src)
    if best is None:
        log.warning("%s: no best-validation checkpoint under %s; row skipped", layout.model_id,
                    src.work_dir)
        return None
    path, epoch = best
    note = (f"checkpoint with the lowest validation loss (epoch {epoch + 1} of "
            f"{source.epochs_completed})")
    model = load_model(str(path), device)
    m, rec = inference_row(layout.model_id, model, tests(dose), cfg, source,
                           key, note, epoch + 1, device)
    return Row(layout.model_id, dose, save_row(layout, m, rec), layout)


def transfer_rows(dc: DoseConfig, arch: str, finals: dict, tests, device: str) -> list[Row]:
    """The network trained at ``dc.transfer_from`` applied to every dose's test scan."""
    d0 = dc.transfer_from
    src_cfg = dc.study(d0, arch)
    src = StudyLayout(dc.dose_dir(d0), src_cfg.model_id)
    name = f"{src_cfg.model_id}@{format_dose(d0)}"
    rows, model = [], None
    for dose in dc.doses:
        cfg = dc.study(dose, arch)
        layout = StudyLayout(dc.dose_dir(dose), name)
        key = {"source": f"{dc.dose_dir(d0).name}/runs/{src.model_id}",
               "source_stamp": row_stamp(src), "data": data_key(cfg),
               "inference": cfg.inference.to_dict()}
        old = reusable_row(layout, key, cfg.run.overwrite, refuse=False)
        if old is None:
            if model is None:
                model = load_model(str(src.run_dir / "model.ckpt"), device)
            note = f"network trained at {format_dose(d0)} photons applied at {format_dose(dose)}"
            m, rec = inference_row(name, model, tests(dose), cfg, finals[(d0, arch)], key, note,
                                   finals[(d0, arch)].epochs_completed, device)
            old = save_row(layout, m, rec)
        rows.append(Row(name, dose, old, layout))
    return rows


def iterative_rows(dc: DoseConfig, dose: float, engine: str, tests) -> list[Row]:
    """``ptychi_<engine>`` (fixed epochs), ``@heldout`` (epoch by the held-out residual) and
    ``@oracle`` (epoch by ground-truth phase PSNR) from one full-scan run, continued in chunks."""
    cfg, m = dc.study(dose), dc.methods
    keys = iterative_keys(dc, dose, engine)
    layouts = {s: StudyLayout(dc.dose_dir(dose), f"ptychi_{engine}{s}") for s in keys}
    olds = {s: reusable_row(layouts[s], keys[s], cfg.run.overwrite) for s in keys}
    if all(v is not None for v in olds.values()):
        log.info("ptychi_%s at %s photons: reusing the finished rows", engine, format_dose(dose))
        return [Row(layouts[s].model_id, dose, olds[s], layouts[s], _read_selection(layouts[s]))
                for s in keys]
    test = tests(dose)
    device = resolve_device(cfg.training.device)
    seed, bs = cfg.training.seed, m.iterative_batch_size or None
    scan = scan_for_ptychi(test, 0)
    log.info("ptychi_%s at %s photons: held-out run, then %d epochs on the full scan", engine,
             format_dose(dose), m.iterative_epochs)
    sel = heldout_curve(engine, scan, test.probe, epochs=m.iterative_epochs,
                        every=dc.heldout_every, fraction=dc.heldout_fraction, batch_size=bs,
                        device=device, seed=seed, bad_pixels=test.bad_pixels)
    res, states = run_ptychi_chunks(engine, scan, epochs=m.iterative_epochs,
                                    every=dc.heldout_every, batch_size=bs, device=device, seed=seed)

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
        rows.append(Row(layouts[s].model_id, dose, save_row(layouts[s], row, rec), layouts[s],
                        selection))
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
    olds = {s: reusable_row(layouts[s], keys[s], cfg.run.overwrite, refuse=False) for s in keys}
    if all(v is not None for v in olds.values()):
        return [Row(layouts[s].model_id, dose, olds[s], layouts[s], _read_selection(layouts[s]))
                for s in keys]
    test = tests(dose)
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
        rows.append(Row(layouts[s].model_id, dose, save_row(layouts[s], row, rec), layouts[s],
                        selection))
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


# ---------------------------------------------------------------------- outputs
def method_order(dc: DoseConfig) -> list[str]:
    archs, engines = dc.methods.architectures, dc.methods.iterative
    names = [f"pinn_{a}" for a in archs] + [f"pinn_{a}@bestval" for a in archs]
    if dc.transfer_from is not None:
        names += [f"pinn_{a}@{format_dose(dc.transfer_from)}" for a in archs]
    for e in engines:
        names += [f"ptychi_{e}", f"ptychi_{e}@heldout", f"ptychi_{e}@oracle"]
    sources = sorted((name for a in archs for name in refine_source_ids(dc, a)),
                     key=lambda name: "@" in name)   # own networks first, then transfers
    for e in dc.methods.refine:
        names += [f"{src}+{e}{rule}" for src in sources for rule in ("", "@heldout")]
    return names


def metric_series(rows: list[Row], doses, methods, key: str, channel: int) -> dict:
    """``{method: [value per dose]}`` (NaN where a cell is missing)."""
    table = {(r.method, r.dose): r.metrics.value(key, channel) for r in rows}
    return {m: [table.get((m, d), math.nan) for d in doses] for m in methods}


def crossovers(rows: list[Row], doses, methods) -> dict:
    """Per metric of :data:`DOSE_METRICS`: best network row vs best ground-truth-free
    iterative row (see ``RULES['crossover']``)."""
    nets = [m for m in methods if m.startswith("pinn_") and "+" not in m]
    its = [m for m in methods if m.startswith("ptychi_") and not m.endswith("@oracle")]
    out = {}
    for _, key, ch, name in DOSE_METRICS:
        series = metric_series(rows, doses, methods, key, ch)
        if not nets or not its:
            out[name] = {"dose": None, "reason": "needs network and iterative rows",
                         "crossings": []}
            continue
        best = [_nanmax([series[m][i] for m in nets]) for i in range(len(doses))], \
               [_nanmax([series[m][i] for m in its]) for i in range(len(doses))]
        out[name] = {**crossover(doses, *best), "network_best": best[0], "iterative_best": best[1],
                     "network_methods": nets, "iterative_methods": its}
    return out


def _nanmax(values) -> float:
    v = [x for x in values if math.isfinite(x)]
    return max(v) if v else math.nan


def dose_table(rows: list[Row]) -> str:
    """:func:`metrics_table` with a leading photons column (one row per (method, dose))."""
    lines = metrics_table([r.metrics for r in rows]).splitlines()
    out = ["| photons " + lines[0], "|---" + lines[1]]
    out += [f"| {format_dose(r.dose)} " + ln for r, ln in zip(rows, lines[2:])]
    return "\n".join(out)


def markdown_report(dc: DoseConfig, rows: list[Row], cross: dict) -> str:
    m = dc.methods
    parts = ["# Dose study", "",
             f"Doses (photons per pattern): {', '.join(format_dose(d) for d in dc.doses)}; "
             f"{settings_line(dc.base, skip=('nphotons', 'loss'))}; "
             f"loss: {dc.loss or 'by dose (rule below)'}; Pty-chi: "
             f"{', '.join(m.iterative) or 'none'} ({m.iterative_epochs} epochs, held-out "
             f"evaluation every {dc.heldout_every}); transfer from: "
             f"{format_dose(dc.transfer_from) if dc.transfer_from is not None else 'none'}; "
             f"refined: {', '.join(m.refine) or 'none'}"
             + (f" ({m.refine_epochs} epochs from each network's object)." if m.refine else "."),
             "", "## Crossover", ""]
    for label, _, _, name in DOSE_METRICS[:2]:
        c = cross[name]
        where = (f"{c['dose']:.3g} photons per pattern" if c["dose"] is not None
                 else f"none ({c['reason']})")
        parts.append(f"- {label}: {where}")
    parts += ["", "## Selected epochs", "", "| method | " + " | ".join(
        format_dose(d) for d in dc.doses) + " |", "|---|" + "---|" * len(dc.doses)]
    epochs = {(r.method, r.dose): r.metrics.epochs_completed for r in rows}
    for name in method_order(dc):
        if ("@" in name and "+" not in name
                and not name.endswith(("@heldout", "@oracle", "@bestval"))):
            continue
        parts.append(f"| {name} | " + " | ".join(
            format_number(epochs.get((name, d))) for d in dc.doses) + " |")
    parts += ["", "## Every (method, dose)", "", dose_table(rows), "",
              "## Rules", ""] + [f"- {k}: {v}." for k, v in RULES.items()] + [
              "", "Metrics as in the comparison (docs/studies.md): 2 px trimmed, amplitude "
              "scaled by mean(gt)/mean(pred), phase plane removed; 'data residual' is the "
              "ground-truth-free amplitude MAE over the full test scan.", ""]
    return "\n".join(parts)


#: Selection-rule suffixes: a row ``<base>@<rule>`` shares its base's colour.
RULE_SUFFIXES = ("@heldout", "@oracle", "@bestval")


def _style(method: str) -> dict:
    """Line style and marker by kind: networks o, Pty-chi s, refined ^; the selection rule
    by line style (held-out -., oracle and best-validation :, transfer --)."""
    if "+" in method:  # refined: an engine started at a network's object
        return {"ls": "-." if method.endswith("@heldout") else "-", "marker": "^", "lw": 1.8}
    if method.startswith("ptychi_"):
        ls = {"heldout": "-.", "oracle": ":"}.get(method.partition("@")[2], "-")
        return {"ls": ls, "marker": "s", "lw": 1.2 if ls == ":" else 1.8}
    suffix = method.partition("@")[2]
    return {"ls": "-" if not suffix else (":" if suffix == "bestval" else "--"), "marker": "o"}


def line_styles(methods: list[str]) -> dict[str, dict]:
    """Matplotlib keywords per method: :func:`_style` plus one colour per base method (the
    name without a selection-rule suffix), distinct for up to 20 bases (tab20), so a sweep
    with refined and transfer rows does not reuse the default cycle's 10 colours."""
    from matplotlib import colormaps
    palette = colormaps["tab20"].colors
    bases: dict[str, int] = {}
    out = {}
    for m in methods:
        base = next((m[:-len(s)] for s in RULE_SUFFIXES if m.endswith(s)), m)
        idx = bases.setdefault(base, len(bases))
        out[m] = {**_style(m), "color": palette[(2 * idx) % 20 + (idx // 10) % 2]}
    return out


def save_figures(dc: DoseConfig, rows: list[Row], cross: dict) -> list[Path]:
    methods = [m for m in method_order(dc) if any(r.method == m for r in rows)]
    panels = {label: metric_series(rows, dc.doses, methods, key, ch)
              for label, key, ch, _ in DOSE_METRICS}
    marks = {label: cross[name]["dose"] for label, _, _, name in DOSE_METRICS}
    out = [save_stacked_figures(dc.output_dir / "dose_study.png", [dose_curves_figure(
        dc.doses, panels, marks, line_styles(methods),
        title="test object 0 against photons per pattern (dashed vertical: crossover of the "
              "best network and the best ground-truth-free iterative row)")])]
    images, gt, cols = {}, None, [format_dose(d) for d in dc.doses]
    for r in rows:
        with np.load(r.layout.recon_dir / "recon.npz") as z:
            if "ground_truth" not in z.files:
                continue
            _, _, ph, ph_gt = align_for_metrics(z["reconstruction"], z["ground_truth"])
        images[(r.method, format_dose(r.dose))] = ph
        if gt is None:
            gt = ph_gt
    if gt is not None:
        for c in cols:
            images[("ground truth", c)] = gt
        lo, hi = np.percentile(gt, [0.5, 99.5])
        fig = image_grid_figure(images, ["ground truth"] + methods, cols, vmin=lo, vmax=hi,
                                title="phase (rad, plane removed): method by photons per pattern")
        out.append(save_stacked_figures(dc.output_dir / "dose_grid.png", [fig], dpi=80))
    return out


# ------------------------------------------------------------------------ sweep
def run_dose_study(dc: DoseConfig, plan: dict | None = None) -> dict:
    """Run (or reuse) every cell, then write the dose-study files; returns the JSON dict
    (``{}`` on the extra ranks of a DDP launch)."""
    plan = plan_sweep(dc) if plan is None else plan
    apply_num_threads(dc.base.run.num_threads)
    tests = _TestData(dc)
    device = resolve_device(dc.base.training.device)
    rows, finals = [], {}
    for dose in dc.doses:
        for arch in dc.methods.architectures:
            cfg = dc.study(dose, arch)
            log.info("dose %s: %s (loss %s)", format_dose(dose), cfg.model_id, cfg.training.loss)
            m = run_or_reuse(cfg, plan[(dose, arch)])
            if m is None:
                return {}
            finals[(dose, arch)] = m
            rows.append(Row(cfg.model_id, dose, m, StudyLayout(dc.dose_dir(dose), cfg.model_id)))
        for arch in dc.methods.architectures:
            row = best_val_row(dc, dose, arch, finals[(dose, arch)], tests, device)
            if row is not None:
                rows.append(row)
        for engine in dc.methods.iterative:
            rows += iterative_rows(dc, dose, engine, tests)
    if dc.transfer_from is not None:
        for arch in dc.methods.architectures:
            rows += transfer_rows(dc, arch, finals, tests, device)
    for dose in dc.doses:
        for source, checkpoint in refine_sources(dc, dose, rows):
            for engine in dc.methods.refine:
                rows += refined_rows(dc, dose, source, checkpoint, engine, tests, device)
    order = {m: i for i, m in enumerate(method_order(dc))}
    rows.sort(key=lambda r: (r.dose, order.get(r.method, len(order))))
    methods = [m for m in method_order(dc) if any(r.method == m for r in rows)]
    cross = crossovers(rows, dc.doses, methods)
    save_figures(dc, rows, cross)
    out = dc.output_dir
    study = dc.base.to_dict()  # per cell: nphotons, architecture (and the loss by the rule)
    study["simulation"].pop("nphotons")
    study["model"].pop("architecture")
    if dc.loss is None:
        study["training"].pop("loss")
    result = {
        "doses": list(dc.doses), "methods": methods, "crossover": cross,
        "rows": [r.to_json(out) for r in rows], "rules": RULES,
        "settings": {"study": study, "architectures": list(dc.methods.architectures),
                     "loss": dc.loss or "by dose", "iterative": list(dc.methods.iterative),
                     "iterative_epochs": dc.methods.iterative_epochs,
                     "iterative_batch_size": dc.methods.iterative_batch_size,
                     "refine": list(dc.methods.refine),
                     "refine_epochs": dc.methods.refine_epochs,
                     "heldout_fraction": dc.heldout_fraction, "heldout_every": dc.heldout_every,
                     "transfer_from": dc.transfer_from},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_text_atomic(out / "dose_study.md", markdown_report(dc, rows, cross))
    write_json_atomic(out / "dose_study.json", result)
    return result


def main(argv=None) -> int:
    """``ptycho-dose-study``. Exit codes: 0 done; 2 refused input (one ``error:`` line,
    nothing written); 130 interrupted (run the same command again, with --resume)."""
    configure_logging()
    try:
        dc = config_from_argv(argv)
        plan = plan_sweep(dc)
    except ValueError as err:
        return refuse(err)
    try:
        result = run_dose_study(dc, plan)
    except (StudyError, IterativeUnavailableError) as err:
        return refuse(err)
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again with --resume to continue "
              "(finished cells are reused)", file=sys.stderr)
        return 130
    if result:
        for label, _, _, name in DOSE_METRICS[:2]:
            c = result["crossover"][name]
            print(f"{label} crossover: " + (f"{c['dose']:.3g} photons" if c["dose"] is not None
                                            else f"none ({c['reason']})"))
        print(f"dose study: {(dc.output_dir / 'dose_study.md').resolve()}")
    return 0
