"""The seed sweep's command line (``ptycho-seeds``): its one option, the seeds
(:class:`SeedsOptions`), and the sweep of study configs it parses to; no torch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ptycho.config.cli import add_options, build_parser, config_from_values
from ptycho.config.options import StudyOptions
from ptycho_torch.studies.sweep import SeedSweep, parse_sweep, seeds_option


@dataclass(frozen=True)
class SeedsOptions(StudyOptions):
    """``ptycho-seeds``' own option: the seeds (required)."""

    title: ClassVar[str] = "seed sweep"
    seeds: tuple[int, ...] | None = seeds_option("comma-separated seeds, e.g. 1,7,42",
                                                 required=True)


def config_from_argv(argv=None, prog: str = "seed_sweep.py") -> SeedSweep:
    p = build_parser(prog, "Run one study per seed and summarise every metric over them "
                           "(mean, min, max).", exclude=("seed",))
    add_options(p, SeedsOptions)
    return parse_sweep(argv, p, SeedsOptions, lambda _, values: config_from_values(values),
                       lambda cfg: cfg, lambda cfg, changes: cfg.replace(**changes), "study")
