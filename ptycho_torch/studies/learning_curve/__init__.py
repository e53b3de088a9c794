"""Quality against training budget, from ONE training run: the learning-curve study.

``scripts/studies/learning_curve.py`` calls :func:`ptycho_torch.studies.commands.learning_curve_main`
(its flags checked without torch, :mod:`ptycho_torch.studies.options.learning_curve`), then
:func:`run` here; :func:`main` (and ``python -m``) is the same in one process. One
study configuration (every study flag, generated from
:class:`~ptycho.config.study_config.StudyConfig`) is trained once, until the largest budget; a
Lightning callback (:class:`BudgetSnapshots`) copies the generator's ``state_dict`` to the
CPU when training crosses each budget. After training every snapshot is loaded back,
test object 0 is reconstructed with :func:`ptycho_torch.engine.inference.reconstruct_test_object`
and scored with :func:`ptycho.reconstruction.score` (plus the ground-truth-free data
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

import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ptycho.artifacts import write_json_atomic
from ptycho.config.cli import flag_hint
from ptycho.config.config import DataConfig
from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import StudyError
from ptycho.dataset import PtychoDataset
from ptycho.metric_catalogue import metrics
from ptycho.plotting import save_learning_curve_figure
from ptycho.study_metrics import format_number as f
from ptycho_torch.engine.callbacks import SnapshotCallback
from ptycho_torch.engine.data import split_indices
from ptycho_torch.engine.outputs import check_dir_target
from ptycho_torch.engine.training import fit_model
from ptycho_torch.ptychi import IterativeUnavailableError, ptychi_available
from ptycho_torch.engine.inference import reconstruct_test_object
from ptycho_torch.engine.device import check_device
from ptycho_torch.pipeline.study import check_data
from ptycho.inputs import load_study_data
from ptycho_torch.studies.learning_curve.config import (
    JSON_NAME,
    PNG_NAME,
    BUDGET_UNITS,
    LearningCurveConfig,
    PANELS,
    WORK_NAME,
    config_from_argv,
    parse_budgets,
    training_budget,
)
from ptycho_torch.studies.learning_curve.budget_snapshots import BudgetSnapshots, _fmt_budget
from ptycho_torch.studies.learning_curve.seeds import (
    plan_curves,
    run_curve,
    summary_table,
    sweep_from_argv,
    write_curve_summary,
)
from ptycho_torch.studies.sweep import SeedSweep, sweep_main
from ptycho_torch.studies.learning_curve.scoring import (
    lsqml_reference,
    machine_info,
    read_reference,
    score_reconstruction,
)
from ptycho_torch.engine.threads import apply_num_threads, threads_line

__all__ = ["BudgetSnapshots", "LearningCurveConfig", "config_from_argv", "main", "parse_budgets",
           "run_learning_curve", "training_budget"]

log = logging.getLogger(__name__)


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
    t_start = time.perf_counter()
    p = _prepare(lc)
    cfg, test = p.cfg, p.test

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
             ",".join(_fmt_budget(b) for b in lc.budgets), lc.kind, p.steps_per_epoch)
    fit = fit_model(cfg.model, cfg.training, p.data_config, p.train, work, resume=False,
                    progress_bar=cfg.run.progress_bar, extra_callbacks=callbacks)
    if fit.interrupted:
        raise KeyboardInterrupt
    missed = snaps.pending
    # a minute budget is stopped by the callback (Lightning reports it as its own timer)
    stop_reason = "largest_budget" if lc.kind == "minutes" and not missed else fit.stop_reason
    if missed:
        log.warning("training stopped (%s) before the budget(s) %s %s", fit.stop_reason,
                    ",".join(_fmt_budget(b) for b in missed), lc.kind)

    points = _score_snapshots(lc, p, fit.model, snaps.snapshots)
    if p.run_lsqml:
        log.info("learning curve: Pty-chi LSQML, %d epochs, on test object 0", lc.lsqml_epochs)
        p.references.append(lsqml_reference(test, lc.lsqml_epochs, p.accelerator,
                                            cfg.training.seed, p.data_config.photon_scale,
                                            inference=cfg.inference))
    result = {
        "model_id": cfg.model_id, "budget_kind": lc.kind, "budget_unit": BUDGET_UNITS[lc.kind],
        "budgets": list(lc.budgets), "budgets_not_reached": missed, "points": points,
        "references": p.references,
        "training": {"stop_reason": stop_reason, "train_time_s": fit.train_time_s,
                     "snapshot_time_s": snaps.snapshot_s, "steps_completed": fit.steps_completed,
                     "epochs_completed": fit.epochs_completed,
                     "steps_per_epoch": p.steps_per_epoch,
                     "n_train_patterns": fit.n_train, "n_val_patterns": fit.n_val,
                     "final_checkpoint": str(fit.checkpoint) if fit.checkpoint else None},
        "config": {"study": cfg.to_dict(), "data_config": p.data_config.to_dict(),
                   "data": p.data_info, "reference_json": lc.reference_json,
                   "lsqml_epochs": lc.lsqml_epochs},
        "machine": machine_info(p.accelerator),
        "test_patterns_scored": int(test.object_selection(0).size),
        "total_time_s": time.perf_counter() - t_start,
    }
    png = save_learning_curve_figure(lc.output_dir / PNG_NAME, result, PANELS)
    path = write_json_atomic(lc.output_dir / JSON_NAME, result)  # last: marks it finished
    return LearningCurveResult(result=result, json_path=path, png_path=png,
                               snapshots=snaps.snapshots)


@dataclass
class _Prepared:
    """What :func:`_prepare` checked and loaded: ``cfg`` is the study config with the
    training budget set; ``references`` the reference levels read so far."""

    cfg: StudyConfig
    accelerator: str
    references: list
    train: PtychoDataset
    test: PtychoDataset
    data_info: dict
    data_config: DataConfig
    run_lsqml: bool
    steps_per_epoch: int


def _prepare(lc: LearningCurveConfig) -> _Prepared:
    """Every check before training (output directory, device, reference file, data, ground
    truth), then the training budget of ``lc`` in the study config."""
    cfg = lc.study
    try:
        preflight(lc)
        accelerator = check_device(cfg)
        threads = apply_num_threads(cfg.run.num_threads)
        if cfg.training.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        references = [read_reference(lc.reference_json)] if lc.reference_json else []
        train, test, data_info = load_study_data(cfg)
        data_config = check_data(cfg, train, test)
        log.info(threads_line(*threads))
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
    return _Prepared(cfg=cfg, accelerator=accelerator, references=references, train=train,
                     test=test, data_info=data_info, data_config=data_config,
                     run_lsqml=run_lsqml, steps_per_epoch=steps_per_epoch)


def _score_snapshots(lc: LearningCurveConfig, p: _Prepared, model, snapshots) -> list:
    """One point per snapshot: its generator weights loaded, test object 0 reconstructed
    and scored (logged)."""
    model.to(torch.device(p.accelerator))
    points = []
    for s in snapshots:
        model.generator.load_state_dict(s.state)
        rec = reconstruct_test_object(model, p.test, p.cfg.inference)
        point = {"budget": s.budget, "minutes": s.minutes, "steps": s.steps, "epochs": s.epochs}
        point.update(score_reconstruction(rec, p.test, p.data_config.photon_scale))
        points.append(point)
        log.info("learning curve: %s %s: amp SSIM %.4f, amp PSNR %.2f dB, phase PSNR %.2f dB, "
                 "phase corr %.3f", _fmt_budget(s.budget), lc.kind, point["amp_ssim"],
                 point["amp_psnr"], point["phase_psnr"], point["phase_correlation"])
    return points


# ------------------------------------------------------------------------ outputs
#: the metric columns of :func:`points_table`
POINT_COLUMNS = metrics("amp_ssim", "amp_psnr", "phase_psnr", "phase_ssim", "phase_correlation",
                        "amp_frc50", "phase_frc50", "data_residual")


def points_table(result: dict) -> str:
    """A markdown table of the points (and the references)."""
    head = ["budget", "minutes", "steps", "epochs"] + [m.header for m in POINT_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in result["points"]:
        cells = [f"{_fmt_budget(p['budget'])} {result['budget_kind']}", f(p["minutes"], 3),
                 str(p["steps"]), f(p["epochs"], 3)]
        cells += [p.get(f"{m.key}_censored") or f(p[m.key]) for m in POINT_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    for r in result["references"]:
        cells = [r.get("label", r["model_id"]), "-", "-", "-"]
        cells += [r.get(f"{m.key}_censored") or f(r.get(m.key)) for m in POINT_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- CLI
def print_result(sweep: SeedSweep, result: dict) -> None:
    if sweep.seeds:
        r = result["seeds_summary"]
        print(summary_table(sweep.seeds, r["budgets"], r["budget_kind"], r["summary"]))
        print(f"learning curve over seeds: {(sweep.output_dir / 'seeds.md').resolve()}")
        return
    print(points_table(result))
    print(f"learning curve: {(sweep.output_dir / JSON_NAME).resolve()} and {PNG_NAME}")


def run(parse: Callable[[], SeedSweep]) -> int:
    """The learning curve(s) of ``parse()`` (its sweep): planned, run, summarised and
    reported. Exit codes: 0 done; 2 refused input (one ``error:`` line on stderr); 130
    interrupted (run again with --overwrite; with ``--seeds`` finished seeds are reused)."""
    return sweep_main(parse, plan_curves,
                      lambda lc, plan: run_curve(lc, plan, lambda c: run_learning_curve(c).result),
                      write_curve_summary, print_result,
                      interrupted="run the same command again (with --seeds finished seeds are "
                                  "reused; else add --overwrite)",
                      errors=(StudyError, IterativeUnavailableError))


def main(argv=None, prog: str = "learning_curve.py") -> int:
    """The learning curve of the flags ``argv``, in this process (the command,
    ``scripts/studies/learning_curve.py``, is
    :func:`ptycho_torch.studies.commands.learning_curve_main`: its flags checked before torch
    loads)."""
    return run(lambda: sweep_from_argv(argv, prog))


if __name__ == "__main__":
    sys.exit(main())
