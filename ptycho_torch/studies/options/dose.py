"""The dose study's command line (``ptycho-dose-study``): its options (:class:`DoseOptions`,
its flags), its config (:class:`DoseConfig`), or the sweep of them over ``--seeds``, and the
rules they need (the default doses, the loss per dose, a dose's name); no torch."""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from ptycho.config.cli import add_options, config_from_values, parse_known
from ptycho.config.cli import build_parser as build_config_parser
from ptycho.config.record import described
from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import StudyError
from ptycho_torch.studies.options.methods import (
    Methods,
    architectures_option,
    default_output_dir,
    iterative_option,
    split_list,
)
from ptycho_torch.studies.sweep import SeedSweep, parse_sweep, seeds_option

DEFAULT_DOSES = "1e2,1e3,1e4,1e5,1e9"
POISSON_BELOW = 1e6          # loss rule: Poisson NLL below this many photons, MAE at and above
TRANSFER_MAX = 1e4           # default --transfer-from: the highest listed dose <= this


def format_dose(v: float) -> str:
    """``1e3``, ``2.5e4``: the dose in folder and method names."""
    return np.format_float_scientific(float(v), trim="-", exp_digits=1).replace("+", "")


def loss_for_dose(nphotons: float) -> str:
    """The default training loss at ``nphotons`` photons per pattern."""
    return "poisson" if float(nphotons) < POISSON_BELOW else "mae"


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


@dataclass(frozen=True)
class DoseOptions(Methods):
    """The dose study's own options (``ptycho-dose-study``'s flags besides the study's)."""

    title: ClassVar[str] = "dose study"
    architectures: tuple[str, ...] = architectures_option("hybrid,fno")
    iterative: tuple[str, ...] = iterative_option("lsqml-poisson,epie")
    nphotons_list: tuple[float, ...] = described(
        DEFAULT_DOSES, "comma-separated photons per pattern, one cell folder each",
        parse=parse_doses)
    transfer_from: str | None = described(
        None, "apply the networks trained at this dose to every dose (default: the highest "
        f"listed dose <= {TRANSFER_MAX:g}; none: no transfer rows)")
    heldout_fraction: float = described(
        0.1, "fraction of scan positions held out to choose the Pty-chi epoch")
    heldout_every: int = described(
        10, "evaluate the held-out residual every this many Pty-chi epochs")
    seeds: tuple[int, ...] | None = seeds_option(
        "comma-separated seeds (replaces --seed): the sweep runs once per seed into "
        "<output-dir>/seed_<s>, then seeds.md / seeds.json / dose_study_seeds.png give the "
        "crossovers and each kind's best row over them")

    def __post_init__(self):
        super().__post_init__()
        parse_transfer(self.transfer_from, self.nphotons_list)
        frac, every = self.heldout_fraction, self.heldout_every
        if not (math.isfinite(frac) and 0 < frac <= 0.5):
            raise StudyError(f"--heldout-fraction={frac} is out of range (allowed: > 0 and "
                             "<= 0.5)")
        if every < 1:
            raise StudyError(f"--heldout-every={every} is out of range (allowed: >= 1)")


def build_parser(prog: str = "dose_study.py") -> argparse.ArgumentParser:
    p = build_config_parser(prog, "Networks against Pty-chi over photons per pattern: simulate "
                            "each dose (same objects, scan and seeds), train every architecture, "
                            "reconstruct with Pty-chi, and write dose_study.md / .json / .png.",
                            exclude=("architecture", "nphotons"))
    add_options(p, DoseOptions)
    return p


@dataclass(frozen=True)
class DoseConfig:
    """The sweep: a base study config (its nphotons and architecture are replaced per cell)
    and the dose study's options."""

    base: StudyConfig
    options: DoseOptions
    loss: str | None = None            # --loss given on the command line, else the rule

    @property
    def methods(self) -> DoseOptions:
        return self.options

    @property
    def doses(self) -> tuple[float, ...]:
        return self.options.nphotons_list

    @property
    def transfer_from(self) -> float | None:
        return parse_transfer(self.options.transfer_from, self.doses)

    @property
    def heldout_fraction(self) -> float:
        return self.options.heldout_fraction

    @property
    def heldout_every(self) -> int:
        return self.options.heldout_every

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


def config_from_argv(argv=None) -> DoseConfig:
    """Parse and validate one sweep (raises a one-line ValueError); ``--seeds`` is
    :func:`sweep_from_argv`'s."""
    values = parse_known(build_parser(), argv)
    options = DoseOptions.from_values(values)
    if options.seeds is not None:
        raise StudyError("--seeds runs one dose sweep per seed (use sweep_from_argv)")
    return dose_config(options, values)


def dose_config(options: DoseOptions, values: dict) -> DoseConfig:
    """The sweep of validated ``options`` and the study flags ``values``, every cell's
    config validated."""
    default_output_dir(values, "dose_study")
    base = config_from_values(values)
    if not base.simulated:
        raise StudyError("the dose study simulates its datasets (only nphotons changes between "
                         "doses) (allowed: no --train-npz) [flag --train-npz]")
    dc = DoseConfig(base=base, options=options, loss=values.get("loss"))
    for d in dc.doses:  # every cell's config is valid before anything runs
        for a in options.architectures:
            dc.study(d, a)
    return dc


def sweep_from_argv(argv=None) -> SeedSweep:
    """Parse and validate everything, ``--seeds`` included (one-line StudyError); with
    seeds, every seed's sweep is checked before anything runs
    (:mod:`ptycho_torch.studies.sweep`)."""
    return parse_sweep(argv, build_parser(), DoseOptions, dose_config, lambda dc: dc.base,
                       lambda dc, changes: replace(dc, base=dc.base.replace(**changes)), "sweep")
