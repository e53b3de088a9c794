"""The comparison's command line (``ptycho-compare``): its options (:class:`CompareOptions`),
its parser and its config (:class:`CompareConfig`: one study config per architecture), or
the sweep of them over ``--seeds``; no torch. The ``--reuse-models`` checkpoints are read
(with torch) when the comparison is planned, before anything runs
(:func:`ptycho_torch.studies.comparison.plan_comparison`)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from ptycho.config.choices import ARCHITECTURES
from ptycho.config.cli import add_options, config_from_values
from ptycho.config.cli import build_parser as build_config_parser
from ptycho.config.record import described
from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import StudyError
from ptycho_torch.studies.options.methods import (
    Methods,
    architectures_option,
    default_output_dir,
    split_list,
)
from ptycho_torch.studies.sweep import SeedSweep, parse_sweep, seeds_option


@dataclass(frozen=True)
class CompareOptions(Methods):
    """The comparison's own options (``ptycho-compare``'s flags besides the study's)."""

    title: ClassVar[str] = "comparison"
    architectures: tuple[str, ...] = architectures_option(",".join(ARCHITECTURES))
    seeds: tuple[int, ...] | None = seeds_option(
        "comma-separated seeds (replaces --seed): the comparison runs once per seed into "
        "<output-dir>/seed_<s>, then seeds.md / seeds.json give each method's metrics as mean "
        "(min..max) over them")
    reuse_models: tuple[str, ...] = described(
        "", "comma-separated model.ckpt files of studies on other scans, each applied to this "
        "comparison's test scan with no training (rows '<run>@reused', scored with the probe "
        "the model trained with)", parse=lambda text: tuple(split_list(text)))


@dataclass(frozen=True)
class CompareConfig:
    """One study config per architecture (otherwise identical), the methods and the
    ``--reuse-models`` checkpoints (checked when the comparison is planned)."""

    studies: tuple[StudyConfig, ...]
    methods: CompareOptions
    reuse: tuple[Path, ...] = ()

    @property
    def base(self) -> StudyConfig:
        return self.studies[0]

    @property
    def output_dir(self) -> Path:
        return Path(self.base.run.output_dir)


def build_parser(prog: str = "grid_lines_compare.py") -> argparse.ArgumentParser:
    p = build_config_parser(prog, "Run several architectures (and optionally Pty-chi) on one "
                            "dataset and write comparison.md / .json / .png. Every study flag "
                            "applies to every architecture.", exclude=("architecture",))
    add_options(p, CompareOptions)
    return p


def config_from_argv(argv=None) -> CompareConfig:
    """Parse and validate everything (raises a one-line ValueError)."""
    sweep = sweep_from_argv(argv)
    if sweep.seeds:
        raise StudyError("--seeds runs one comparison per seed (use sweep_from_argv)")
    return sweep.runs[0]


def sweep_from_argv(argv=None) -> SeedSweep:
    """Parse and validate everything, ``--seeds`` included (one-line StudyError): one
    comparison, or one per seed (:mod:`ptycho_torch.studies.sweep`)."""
    return parse_sweep(argv, build_parser(), CompareOptions, compare_config, lambda cc: cc.base,
                       lambda cc, changes: replace(cc, studies=tuple(
                           c.replace(**changes) for c in cc.studies)), "comparison")


def compare_config(methods: CompareOptions, values: dict) -> CompareConfig:
    """The comparison of validated ``methods`` and the study flags ``values``."""
    default_output_dir(values, "grid_lines_compare")
    base = config_from_values(values)
    return CompareConfig(studies=tuple(base.replace(architecture=a) for a in methods.architectures),
                         methods=methods, reuse=tuple(Path(p) for p in methods.reuse_models))
