"""The learning curve's command line: its options (:class:`CurveOptions`: budgets in
minutes, steps or epochs), its config (:class:`LearningCurveConfig`), or the sweep of them
over ``--seeds``; no torch."""
from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import ClassVar

from ptycho.config.cli import add_options, config_from_values, parse_known
from ptycho.config.cli import build_parser as build_config_parser
from ptycho.config.options import StudyOptions
from ptycho.config.record import described
from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import StudyError
from ptycho.metric_catalogue import metrics
from ptycho_torch.studies.options.methods import default_output_dir
from ptycho_torch.studies.sweep import SeedSweep, parse_sweep, seeds_option


BUDGET_KINDS = ("minutes", "steps", "epochs")
BUDGET_UNITS = {"minutes": "training wall time (min)", "steps": "optimizer steps",
                "epochs": "epochs"}
# the budget owns these (set by training_budget); explicit flags are refused
BUDGET_FIELDS = ("epochs", "max_steps", "max_train_minutes")
MAX_EPOCHS = 100000  # TrainingConfig's upper bound: "no epoch limit" for minute budgets
JSON_NAME, PNG_NAME = "learning_curve.json", "learning_curve.png"
WORK_NAME = "learning_curve"
# (point key, panel title) of the figure
PANELS = tuple((m.key, m.title) for m in metrics("amp_ssim", "amp_psnr", "phase_psnr",
                                                 "phase_correlation"))


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


def _budget(kind: str, help: str):
    return described(None, help, metavar="LIST", exclusive="budget", required=True,
                     parse=partial(parse_budgets, kind=kind))


@dataclass(frozen=True)
class CurveOptions(StudyOptions):
    """The learning curve's own options: exactly one budget list, the reference levels and
    the seeds."""

    title: ClassVar[str] = "learning curve"
    budget_minutes: tuple | None = _budget(
        "minutes", "training wall-time budgets in minutes, increasing (e.g. 1,2,4,8,16,32,64); "
        "snapshot time excluded")
    budget_steps: tuple | None = _budget(
        "steps", "optimizer-step budgets, increasing (reproducible on any machine)")
    budget_epochs: tuple | None = _budget("epochs", "epoch budgets, increasing (whole epochs)")
    reference_json: str | None = described(
        None, "a metrics.json (e.g. runs/ptychi_lsqml/metrics.json of a comparison) drawn as a "
        "dashed reference level labelled with its model_id", metavar="PATH")
    lsqml_epochs: int | None = described(
        None, "also run Pty-chi LSQML for N epochs on the same test scan and draw it as a "
        "reference level (skipped with a warning when Pty-chi is not installed)", metavar="N")
    seeds: tuple[int, ...] | None = seeds_option(
        "comma-separated seeds (replaces --seed): one curve per seed into "
        "<output-dir>/seed_<s>, then seeds.md / seeds.json / learning_curve_seeds.png give "
        "each point as mean (min..max)", metavar="LIST")

    def __post_init__(self):
        super().__post_init__()
        given = [k for k in BUDGET_KINDS if getattr(self, f"budget_{k}") is not None]
        if len(given) != 1:
            raise StudyError(f"{len(given)} budget lists were given (allowed: exactly one of "
                             "--budget-minutes, --budget-steps, --budget-epochs)")
        if self.lsqml_epochs is not None and self.lsqml_epochs < 1:
            raise StudyError(f"--lsqml-epochs={self.lsqml_epochs} is out of range (allowed: "
                             ">= 1)")

    @property
    def kind(self) -> str:
        return next(k for k in BUDGET_KINDS if getattr(self, f"budget_{k}") is not None)

    @property
    def budgets(self) -> tuple:
        return getattr(self, f"budget_{self.kind}")


def build_parser(prog: str = "learning_curve.py") -> argparse.ArgumentParser:
    p = build_config_parser(prog, "Train one configuration once and score test object 0 at "
                            "increasing training budgets (snapshots of the weights, no "
                            "retraining); write learning_curve.json / .png. The budget sets "
                            "--epochs, --max-steps and --max-train-minutes.")
    add_options(p, CurveOptions)
    return p


def config_from_argv(argv=None, prog: str = "learning_curve.py") -> LearningCurveConfig:
    """Parse and validate one curve (raises a one-line ValueError); ``--seeds`` is
    :func:`sweep_from_argv`'s."""
    values = parse_known(build_parser(prog), argv)
    options = CurveOptions.from_values(values)
    if options.seeds is not None:
        raise StudyError("--seeds runs one learning curve per seed (use sweep_from_argv)")
    return curve_config(options, values)


def curve_config(options: CurveOptions, values: dict) -> LearningCurveConfig:
    """The learning curve of validated ``options`` and the study flags ``values``."""
    for name in BUDGET_FIELDS:
        if name in values:
            raise StudyError(f"--{name.replace('_', '-')} is set by the learning curve from "
                             f"--budget-{options.kind} (allowed: drop it)")
    default_output_dir(values, "learning_curve")
    return make_config(config_from_values(values), options.kind, options.budgets,
                       reference_json=options.reference_json,
                       lsqml_epochs=options.lsqml_epochs or 0)


def sweep_from_argv(argv=None, prog: str = "learning_curve.py") -> SeedSweep:
    """One learning curve, or one per seed of ``--seeds`` (one-line StudyError on bad
    input; :mod:`ptycho_torch.studies.sweep`)."""
    return parse_sweep(argv, build_parser(prog), CurveOptions, curve_config, lambda lc: lc.study,
                       lambda lc, changes: replace(lc, study=lc.study.replace(**changes)), "curve")


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
