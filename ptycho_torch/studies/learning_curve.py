"""Quality against training budget, from ONE training run: the learning-curve study.

:func:`main` is the entry point (``scripts/studies/learning_curve.py`` only calls it). One
study configuration (every study flag, generated from
:class:`~ptycho.config.config.StudyConfig`) is trained once, until the largest budget; a
Lightning callback (:class:`BudgetSnapshots`) copies the generator's ``state_dict`` to the
CPU when training crosses each budget. After training every snapshot is loaded back,
test object 0 is reconstructed with :func:`ptycho_torch.reconstruction.reconstruct_test_object`
and scored with :func:`ptycho_torch.reconstruction.score` (plus the ground-truth-free data
residual). Nothing is retrained.

Budgets (exactly one flag, a comma-separated increasing list):

* ``--budget-minutes 1,2,4,...``  wall time of training, measured from fit start, without
  the time spent taking snapshots (machine-dependent);
* ``--budget-steps 500,1000,...`` optimizer steps (reproducible on any machine);
* ``--budget-epochs 1,2,4,...``   whole epochs (GPU runs).

The budget sets ``epochs`` / ``max_steps`` / ``max_train_minutes``, so those flags (and early
stopping, ``--resume`` and multi-process training) are refused. Optional reference level:
``--reference-json PATH`` (any ``metrics.json``, e.g. ``runs/ptychi_lsqml/metrics.json`` of
a comparison) and/or ``--lsqml-epochs N`` (Pty-chi LSQML on the same test scan when
Pty-chi is installed; skipped with a warning otherwise).

Writes, under ``--output-dir`` (atomically): ``learning_curve.json`` (points, config,
machine, references) and ``learning_curve.png`` (amplitude SSIM, amplitude PSNR, phase PSNR,
phase correlation against the budget, log x, references dashed). Training state lives in
``<output-dir>/.work/learning_curve`` (``final.ckpt`` holds the last weights). Refused
input: one ``error:`` line on stderr, exit code 2.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from ptycho.artifacts import save_figure_atomic, write_json_atomic
from ptycho.config.cli import build_parser as build_config_parser
from ptycho.config.cli import config_from_values, flag_hint, parse_known
from ptycho.config.config import StudyConfig
from ptycho.config.validation import StudyError
from ptycho.plotting import _plt
from ptycho.study_metrics import StudyMetrics
from ptycho.study_metrics import format_number as f
from ptycho_torch.cli import configure_logging, refuse
from ptycho_torch.data_residual import data_residual, test_object_residuals
from ptycho_torch.engine.callbacks import SnapshotCallback
from ptycho_torch.engine.data import split_indices
from ptycho_torch.engine.device import apply_num_threads
from ptycho_torch.engine.outputs import check_dir_target
from ptycho_torch.engine.training import fit_model
from ptycho_torch.ptychi import IterativeUnavailableError, ptychi_available
from ptycho_torch.ptychi.baseline import reconstruct_iterative
from ptycho_torch.reconstruction import reconstruct_test_object, score
from ptycho_torch.study import check_data, check_device, load_study_data

log = logging.getLogger(__name__)

BUDGET_KINDS = ("minutes", "steps", "epochs")
BUDGET_UNITS = {"minutes": "training wall time (min)", "steps": "optimizer steps",
                "epochs": "epochs"}
# the budget owns these (set by training_budget); explicit flags are refused
BUDGET_FIELDS = ("epochs", "max_steps", "max_train_minutes")
MAX_EPOCHS = 100000  # TrainingConfig's upper bound: "no epoch limit" for minute budgets
JSON_NAME, PNG_NAME = "learning_curve.json", "learning_curve.png"
WORK_NAME = "learning_curve"
# (point key, panel title) of the figure
PANELS = (("amp_ssim", "amplitude SSIM"), ("amp_psnr", "amplitude PSNR (dB)"),
          ("phase_psnr", "phase PSNR (dB)"), ("phase_correlation", "phase correlation"))


# ------------------------------------------------------------------------ config
def parse_budgets(text, kind: str) -> tuple:
    """``"1,2,4"`` -> ``(1, 2, 4)``: positive, strictly increasing; integers for steps and
    epochs, numbers for minutes. Raises StudyError (one line) otherwise."""
    name = f"--budget-{kind}"
    allowed = ("allowed: positive " + ("numbers" if kind == "minutes" else "integers")
               + " in increasing order, e.g. 1,2,4,8")
    items = [t.strip() for t in str(text).split(",")]
    if not any(items):
        raise StudyError(f"{name}={text!r} is empty ({allowed})")
    values = []
    for t in items:
        try:
            v = float(t) if kind == "minutes" else int(t)
        except ValueError:
            raise StudyError(f"{name}={text!r}: {t!r} is not a "
                             f"{'number' if kind == 'minutes' else 'whole number'} "
                             f"({allowed})") from None
        if not (math.isfinite(v) and v > 0):
            raise StudyError(f"{name}={text!r}: {t!r} is not positive ({allowed})")
        values.append(v)
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise StudyError(f"{name}={text!r} is not strictly increasing ({allowed})")
    return tuple(values)


@dataclass(frozen=True)
class LearningCurveConfig:
    """The study trained once, the budgets at which it is scored, the reference levels."""

    study: StudyConfig
    kind: str
    budgets: tuple
    reference_json: str | None = None
    lsqml_epochs: int = 0

    @property
    def output_dir(self) -> Path:
        return Path(self.study.run.output_dir)


def build_parser(prog: str = "learning_curve.py") -> argparse.ArgumentParser:
    p = build_config_parser(prog, "Train one configuration once and score test object 0 at "
                            "increasing training budgets (snapshots of the weights, no "
                            "retraining); write learning_curve.json / .png. The budget sets "
                            "--epochs, --max-steps and --max-train-minutes.")
    g = p.add_argument_group("learning curve")
    budget = g.add_mutually_exclusive_group(required=True)
    budget.add_argument("--budget-minutes", metavar="LIST", default=argparse.SUPPRESS,
                        help="training wall-time budgets in minutes, increasing (e.g. "
                             "1,2,4,8,16,32,64); snapshot time excluded")
    budget.add_argument("--budget-steps", metavar="LIST", default=argparse.SUPPRESS,
                        help="optimizer-step budgets, increasing (reproducible on any machine)")
    budget.add_argument("--budget-epochs", metavar="LIST", default=argparse.SUPPRESS,
                        help="epoch budgets, increasing (whole epochs)")
    g.add_argument("--reference-json", metavar="PATH", default=argparse.SUPPRESS,
                   help="a metrics.json (e.g. runs/ptychi_lsqml/metrics.json of a comparison) "
                        "drawn as a dashed reference level labelled with its model_id")
    g.add_argument("--lsqml-epochs", metavar="N", type=int, default=argparse.SUPPRESS,
                   help="also run Pty-chi LSQML for N epochs on the same test scan and draw it "
                        "as a reference level (skipped with a warning when Pty-chi is not "
                        "installed)")
    return p


def default_output_dir(values: dict) -> None:
    """``outputs/learning_curve[_<preset>]`` unless ``--output-dir`` was given."""
    if "output_dir" not in values:
        preset = values.get("preset", "none")
        values["output_dir"] = "outputs/learning_curve" + (
            "" if preset in (None, "none") else f"_{preset}")


def config_from_argv(argv=None, prog: str = "learning_curve.py") -> LearningCurveConfig:
    """Parse and validate everything (raises a one-line ValueError)."""
    values = parse_known(build_parser(prog), argv)
    kind = next(k for k in BUDGET_KINDS if f"budget_{k}" in values)
    budgets = parse_budgets(values.pop(f"budget_{kind}"), kind)
    reference = values.pop("reference_json", None)
    lsqml_epochs = values.pop("lsqml_epochs", None)
    if lsqml_epochs is not None and lsqml_epochs < 1:
        raise StudyError(f"--lsqml-epochs={lsqml_epochs} is out of range (allowed: >= 1)")
    for name in BUDGET_FIELDS:
        if name in values:
            raise StudyError(f"--{name.replace('_', '-')} is set by the learning curve from "
                             f"--budget-{kind} (allowed: drop it)")
    default_output_dir(values)
    study = config_from_values(values)
    return make_config(study, kind, budgets, reference_json=reference,
                       lsqml_epochs=int(lsqml_epochs or 0))


def make_config(study: StudyConfig, kind: str, budgets, *, reference_json: str | None = None,
                lsqml_epochs: int = 0) -> LearningCurveConfig:
    """Validate a learning curve and set the study's budget fields from the budgets
    (``epochs`` is refined from the training-set size when the data are loaded)."""
    if kind not in BUDGET_KINDS:
        raise StudyError(f"budget kind {kind!r} is not allowed (allowed: "
                         f"{', '.join(BUDGET_KINDS)})")
    budgets = parse_budgets(",".join(str(b) for b in budgets), kind)
    tc = study.training
    if study.run.resume:
        raise StudyError("--resume: a learning curve cannot continue an interrupted run (its "
                         "snapshots live in memory) (allowed: run it again, with --overwrite)")
    if tc.early_stopping_patience:
        raise StudyError(f"--early-stopping-patience={tc.early_stopping_patience}: a learning "
                         "curve trains to its largest budget (allowed: 0)")
    if tc.devices * tc.num_nodes > 1 or tc.strategy == "ddp":
        raise StudyError("a learning curve trains in one process (allowed: --devices 1 "
                         "--num-nodes 1 --strategy auto)")
    if lsqml_epochs < 0:
        raise StudyError(f"--lsqml-epochs={lsqml_epochs} is out of range (allowed: >= 1)")
    study = study.replace(**training_budget(kind, budgets))
    return LearningCurveConfig(study=study, kind=kind, budgets=budgets,
                               reference_json=reference_json, lsqml_epochs=int(lsqml_epochs))


def training_budget(kind: str, budgets, steps_per_epoch: int | None = None) -> dict:
    """``epochs`` / ``max_steps`` / ``max_train_minutes`` that train until the largest budget.

    Minutes: no epoch or step limit (the callback stops training; Lightning's own timer
    would count the snapshot time). Steps: ``max_steps`` and enough epochs to reach it.
    Epochs: ``epochs``.
    """
    last = budgets[-1]
    if kind == "epochs":
        return dict(epochs=int(last), max_steps=0, max_train_minutes=0.0)
    if kind == "steps":
        epochs = MAX_EPOCHS if not steps_per_epoch else -(-int(last) // int(steps_per_epoch))
        return dict(epochs=min(max(epochs, 1), MAX_EPOCHS), max_steps=int(last),
                    max_train_minutes=0.0)
    return dict(epochs=MAX_EPOCHS, max_steps=0, max_train_minutes=0.0)


# ---------------------------------------------------------------------- snapshots
@dataclass
class Snapshot:
    """The generator's weights (CPU copies) when training crossed ``budget``."""

    budget: float
    state: dict
    minutes: float
    steps: int
    epochs: float


class BudgetSnapshots(Callback):
    """Copy the generator's ``state_dict`` to the CPU when training crosses each budget.

    ``steps``: after the optimizer step that makes ``global_step == budget``. ``epochs``:
    at the end of the epoch that completes the budget. ``minutes``: after the first batch
    at which the training clock (from fit start, minus the time spent in this callback)
    has reached the budget; after the last one training is stopped. Copies are made under
    ``torch.no_grad`` without touching any random number generator, so snapshots do not
    change the training result.
    """

    def __init__(self, kind: str, budgets) -> None:
        if kind not in BUDGET_KINDS:
            raise ValueError(f"kind={kind!r} (allowed: {', '.join(BUDGET_KINDS)})")
        self.kind = kind
        self.budgets = tuple(budgets)
        self.snapshots: list[Snapshot] = []
        self.snapshot_s = 0.0
        self._t0 = time.perf_counter()

    @property
    def pending(self) -> list:
        return list(self.budgets[len(self.snapshots):])

    def minutes(self) -> float:
        """Training wall time so far, in minutes, without the snapshot time."""
        return (time.perf_counter() - self._t0 - self.snapshot_s) / 60.0

    def on_fit_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()
        self.snapshot_s = 0.0
        self.snapshots = []

    def _take(self, pl_module, budgets, steps: int, epochs: float) -> None:
        import torch
        minutes = self.minutes()
        t = time.perf_counter()
        with torch.no_grad():
            state = {k: v.detach().to("cpu", copy=True)
                     for k, v in pl_module.generator.state_dict().items()}
        for b in budgets:  # several minute budgets may be crossed by one slow batch
            self.snapshots.append(Snapshot(budget=b, state=state, minutes=minutes,
                                           steps=int(steps), epochs=float(epochs)))
            log.info("learning curve: snapshot at %s %s (step %d, epoch %.3f, %.2f min)",
                     _fmt_budget(b), self.kind, steps, epochs, minutes)
        self.snapshot_s += time.perf_counter() - t

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        pending = self.pending
        if not pending or self.kind == "epochs":
            return
        steps = int(trainer.global_step)
        n_batches = trainer.num_training_batches
        epochs = int(trainer.current_epoch) + (
            (batch_idx + 1) / n_batches if n_batches and math.isfinite(n_batches) else 0.0)
        if self.kind == "steps":
            crossed = [b for b in pending if steps >= b]
        else:
            now = self.minutes()
            crossed = [b for b in pending if now >= b]
        if crossed:
            self._take(pl_module, crossed, steps, epochs)
            if self.kind == "minutes" and not self.pending:
                trainer.should_stop = True

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        pending = self.pending
        if self.kind != "epochs" or not pending:
            return
        done = int(trainer.current_epoch) + 1
        crossed = [b for b in pending if done >= b]
        if crossed:
            self._take(pl_module, crossed, int(trainer.global_step), float(done))


def _fmt_budget(b) -> str:
    return f"{b:g}" if isinstance(b, float) else str(b)


# ------------------------------------------------------------------------ scoring
def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def summary_of(metrics: dict, phase_correlation, residual: dict | None) -> dict:
    """The flat numbers of a point or a reference: ``{name: [amplitude, phase]}`` metrics
    (``psnr``, ``ssim``, ``frc50``) picked out, plus phase correlation and data residual."""
    residual = residual or {}
    return {"amp_ssim": _num(metrics["ssim"][0]), "phase_ssim": _num(metrics["ssim"][1]),
            "amp_psnr": _num(metrics["psnr"][0]), "phase_psnr": _num(metrics["psnr"][1]),
            "phase_correlation": _num(phase_correlation),
            "amp_frc50": _num(metrics["frc50"][0]), "phase_frc50": _num(metrics["frc50"][1]),
            "data_residual": _num(residual.get("amplitude_mae"))}


def score_reconstruction(rec, test, photon_scale: float, *, network: bool = True) -> dict:
    """Metrics of a reconstruction of test object 0 (with ground truth) and its data
    residual, as a point's fields (plus the full ``metrics`` dict). A network's
    ``data_residual`` is that of its stitched object and ``patch_residual`` that of its raw
    patches (``ptycho_torch.data_residual.network_residuals``); an iterative object's is
    taken from the object itself (``network=False``)."""
    result, _ = score(rec)
    if network:
        residual, patches = test_object_residuals(rec, test, photon_scale=photon_scale)
    else:
        sub = test.select(test.object_selection(0))
        residual, patches = data_residual(rec.patches, sub.diffraction, test.probe,
                                          photon_scale=photon_scale,
                                          bad_pixels=test.bad_pixels), None
    out = summary_of(result["metrics"], result["phase_correlation"], residual)
    out.update(phase_strength_ratio=_num(result["phase_strength_ratio"]),
               metrics=result["metrics"], data_residual_all=residual,
               inference_time_s=rec.inference_time_s)
    if patches is not None:
        out["patch_residual"] = _num(patches.get("amplitude_mae"))
    return out


def read_reference(path: str) -> dict:
    """The reference level of a ``metrics.json`` (scored against ground truth)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
        m = StudyMetrics.from_json(data)
    except (OSError, ValueError, TypeError) as err:
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        raise StudyError(f"reference '{p}': cannot read ({reason}) (expected a metrics.json "
                         "written by a study or a comparison) [flag --reference-json]") from None
    if not m.ground_truth or m.ssim is None or m.psnr is None:
        raise StudyError(f"reference '{p}': key 'ssim' is null (expected a metrics.json scored "
                         "against ground truth) [flag --reference-json]")
    metrics = {k: [m.value(k, 0), m.value(k, 1)] for k in ("psnr", "ssim", "frc50")}
    ref = {"model_id": m.model_id, "label": m.model_id, "source": str(p), "kind": m.kind}
    ref.update(summary_of(metrics, m.phase_correlation, m.data_residual))
    ref["time_s"] = m.inference_time_s if m.kind == "iterative" else m.train_time_s
    return ref


def lsqml_reference(test, epochs: int, device: str, seed: int, photon_scale: float, *,
                    inference=None) -> dict:
    """Pty-chi LSQML on test object 0 (known probe and positions), scored like a point."""
    t0 = time.perf_counter()
    rec, res = reconstruct_iterative("lsqml", test, epochs=epochs, device=device, seed=seed,
                                     inference=inference)
    ref = {"model_id": "ptychi_lsqml", "label": f"ptychi_lsqml ({res.epochs} epochs)",
           "source": f"Pty-chi LSQML, {res.epochs} epochs, run by the learning curve",
           "kind": "iterative"}
    scored = score_reconstruction(rec, test, photon_scale, network=False)
    ref.update({k: v for k, v in scored.items() if k not in ("metrics", "data_residual_all",
                                                             "inference_time_s")})
    ref["time_s"] = time.perf_counter() - t0
    ref["epochs"] = int(res.epochs)
    return ref


def machine_info(accelerator: str) -> dict:
    import torch
    info = {"platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "device": accelerator, "cuda_device": None}
    if accelerator == "cuda" and torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


# --------------------------------------------------------------------------- run
@dataclass
class LearningCurveResult:
    """What :func:`run_learning_curve` wrote (``result`` is learning_curve.json's content)
    and the snapshots it scored (CPU state dicts of the generator)."""

    result: dict
    json_path: Path
    png_path: Path
    snapshots: list = field(default_factory=list)


def preflight(lc: LearningCurveConfig) -> None:
    """Output-directory checks (writes nothing)."""
    out = lc.output_dir
    check_dir_target("output_dir", out)
    if lc.study.run.cache_dir:
        check_dir_target("cache_dir", Path(lc.study.run.cache_dir))
    if (out / JSON_NAME).exists() and not lc.study.run.overwrite:
        raise StudyError(f"output_dir={str(out)!r} already holds a learning curve "
                         f"({out / JSON_NAME}); pass --overwrite to replace it or choose "
                         "another --output-dir")


def run_learning_curve(lc: LearningCurveConfig) -> LearningCurveResult:
    """Train once, snapshot at every budget, score every snapshot, write the outputs.

    Every refusal (config, output directory, device, data, reference file) happens before
    training; a refusal raises :class:`StudyError`.
    """
    import torch


    t_start = time.perf_counter()
    cfg = lc.study
    try:
        preflight(lc)
        accelerator = check_device(cfg)
        apply_num_threads(cfg.run.num_threads)
        if cfg.training.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        references = [read_reference(lc.reference_json)] if lc.reference_json else []
        train, test, data_info = load_study_data(cfg)
        data_config = check_data(cfg, train, test)
    except StudyError:
        raise
    except ValueError as err:
        raise StudyError(flag_hint(err)) from None
    if test.ground_truth is None:
        hint = " [flag --test-npz]" if cfg.run.train_npz else ""
        raise StudyError(f"dataset '{test.path}': key 'YY_ground_truth' is missing (expected the "
                         f"ground truth of test object 0: a learning curve scores it){hint}")
    run_lsqml = False
    if lc.lsqml_epochs:
        run_lsqml = ptychi_available()
        if not run_lsqml:
            log.warning("--lsqml-epochs: Pty-chi is not installed (optional extra 'iterative'); "
                        "no LSQML reference level")
    tc = cfg.training
    split = split_indices(train.n, tc.val_fraction, tc.seed, tc.max_train_patterns)
    steps_per_epoch = -(-int(split.train_idx.size) // tc.batch_size)
    cfg = cfg.replace(**training_budget(lc.kind, lc.budgets, steps_per_epoch))

    # ---- first writes into output_dir (besides the simulated-dataset cache) ----
    work = lc.output_dir / ".work" / WORK_NAME
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    snaps = BudgetSnapshots(lc.kind, lc.budgets)
    callbacks = [snaps]
    if cfg.run.snapshot_every:
        callbacks.append(SnapshotCallback(test, lc.output_dir / "visuals" / "snapshots",
                                          f"learning_curve_{cfg.model_id}",
                                          cfg.run.snapshot_every))
    log.info("learning curve of %s: budgets %s %s (%d steps per epoch)", cfg.model_id,
             ",".join(_fmt_budget(b) for b in lc.budgets), lc.kind, steps_per_epoch)
    fit = fit_model(cfg.model, cfg.training, data_config, train, work, resume=False,
                    progress_bar=cfg.run.progress_bar, extra_callbacks=callbacks)
    if fit.interrupted:
        raise KeyboardInterrupt
    missed = snaps.pending
    # a minute budget is stopped by the callback (Lightning reports it as its own timer)
    stop_reason = "largest_budget" if lc.kind == "minutes" and not missed else fit.stop_reason
    if missed:
        log.warning("training stopped (%s) before the budget(s) %s %s", fit.stop_reason,
                    ",".join(_fmt_budget(b) for b in missed), lc.kind)

    model = fit.model
    device = torch.device(accelerator)
    model.to(device)
    points = []
    for s in snaps.snapshots:
        model.generator.load_state_dict(s.state)
        rec = reconstruct_test_object(model, test, cfg.inference)
        point = {"budget": s.budget, "minutes": s.minutes, "steps": s.steps, "epochs": s.epochs}
        point.update(score_reconstruction(rec, test, data_config.photon_scale))
        points.append(point)
        log.info("learning curve: %s %s: amp SSIM %.4f, amp PSNR %.2f dB, phase PSNR %.2f dB, "
                 "phase corr %.3f", _fmt_budget(s.budget), lc.kind, point["amp_ssim"],
                 point["amp_psnr"], point["phase_psnr"], point["phase_correlation"])
    if run_lsqml:
        log.info("learning curve: Pty-chi LSQML, %d epochs, on test object 0", lc.lsqml_epochs)
        references.append(lsqml_reference(test, lc.lsqml_epochs, accelerator, cfg.training.seed,
                                          data_config.photon_scale, inference=cfg.inference))
    result = {
        "model_id": cfg.model_id, "budget_kind": lc.kind, "budget_unit": BUDGET_UNITS[lc.kind],
        "budgets": list(lc.budgets), "budgets_not_reached": missed, "points": points,
        "references": references,
        "training": {"stop_reason": stop_reason, "train_time_s": fit.train_time_s,
                     "snapshot_time_s": snaps.snapshot_s, "steps_completed": fit.steps_completed,
                     "epochs_completed": fit.epochs_completed, "steps_per_epoch": steps_per_epoch,
                     "n_train_patterns": fit.n_train, "n_val_patterns": fit.n_val,
                     "final_checkpoint": str(fit.checkpoint) if fit.checkpoint else None},
        "config": {"study": cfg.to_dict(), "data_config": data_config.to_dict(),
                   "data": data_info, "reference_json": lc.reference_json,
                   "lsqml_epochs": lc.lsqml_epochs},
        "machine": machine_info(accelerator),
        "test_patterns_scored": int(test.object_selection(0).size),
        "total_time_s": time.perf_counter() - t_start,
    }
    png = save_learning_curve_figure(lc.output_dir / PNG_NAME, result)
    path = write_json_atomic(lc.output_dir / JSON_NAME, result)  # last: marks it finished
    return LearningCurveResult(result=result, json_path=path, png_path=png,
                               snapshots=snaps.snapshots)


# ------------------------------------------------------------------------ outputs
def save_learning_curve_figure(path: Path, result: dict) -> Path:
    """Four panels (amplitude SSIM and PSNR, phase PSNR, phase correlation) against the
    budget on a log x axis; every reference level as a dashed line labelled by model_id."""
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), squeeze=False)
    x = [p["budget"] for p in result["points"]]
    colours = ("tab:red", "tab:green", "tab:purple", "tab:brown")
    for ax, (key, title) in zip(axes.ravel(), PANELS):
        ax.plot(x, [p[key] for p in result["points"]], "o-", color="tab:blue",
                label=result["model_id"])
        for i, ref in enumerate(result["references"]):
            if math.isfinite(_num(ref.get(key))):
                ax.axhline(ref[key], ls="--", lw=1.2, color=colours[i % len(colours)],
                           label=ref.get("label", ref["model_id"]))
        ax.set_xscale("log", base=2)
        if x:
            ax.set_xticks(x)
            ax.set_xticklabels([_fmt_budget(b) for b in x], fontsize=8)
            ax.minorticks_off()
        ax.set_xlabel(result["budget_unit"])
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    m = result["machine"]
    fig.suptitle(f"learning curve: {result['model_id']} on test object 0 "
                 f"({m['device']}, {m['torch_threads']} torch thread(s))")
    fig.tight_layout()
    try:
        return save_figure_atomic(fig, path)
    finally:
        plt.close(fig)


def points_table(result: dict) -> str:
    """A markdown table of the points (and the references)."""
    head = ["budget", "minutes", "steps", "epochs", "amp SSIM", "amp PSNR", "phase PSNR",
            "phase SSIM", "phase corr", "amp FRC50", "phase FRC50", "data residual"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in result["points"]:
        cells = [f"{_fmt_budget(p['budget'])} {result['budget_kind']}", f(p["minutes"], 3),
                 str(p["steps"]), f(p["epochs"], 3)]
        cells += [f(p[k]) for k in ("amp_ssim", "amp_psnr", "phase_psnr", "phase_ssim",
                                    "phase_correlation", "amp_frc50", "phase_frc50",
                                    "data_residual")]
        lines.append("| " + " | ".join(cells) + " |")
    for r in result["references"]:
        cells = [r.get("label", r["model_id"]), "-", "-", "-"]
        cells += [f(r.get(k)) for k in ("amp_ssim", "amp_psnr", "phase_psnr", "phase_ssim",
                                        "phase_correlation", "amp_frc50", "phase_frc50",
                                        "data_residual")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- CLI
def main(argv=None, prog: str = "learning_curve.py") -> int:
    """Exit codes: 0 done; 2 refused input (one ``error:`` line on stderr); 130
    interrupted (run again with --overwrite)."""
    configure_logging()
    try:
        lc = config_from_argv(argv, prog=prog)
    except ValueError as err:  # StudyError, ConfigError
        return refuse(err)
    try:
        out = run_learning_curve(lc)
    except (StudyError, IterativeUnavailableError) as err:
        return refuse(err)
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again with --overwrite",
              file=sys.stderr)
        return 130
    print(points_table(out.result))
    print(f"learning curve: {out.json_path.resolve()} and {out.png_path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
