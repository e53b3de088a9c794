"""One sweep over seeds for every study (``--seeds 1,7,42``), and its one summary format.

A study's options run once per seed into ``<output-dir>/seed_<s>/`` (``--seeds`` replaces
``--seed``); every seed's plan is checked before anything runs, finished rows are reused
(:mod:`.rows`), and the study's summary over the seeds goes to ``<output-dir>``. The seed
sets each network's initial weights, its train / validation split and data order, the
seeded Pty-chi steps and held-out positions; the simulated datasets keep their own seeds
(``train_seed``, ``test_seed``: the cache key of ``ptycho.inputs.study_paths`` is the
simulation settings with N and gridsize, never the study's seed), so every seed sees the
same data and one dataset cache, ``<output-dir>/datasets`` (or ``--cache-dir``), serves
them all. A scan read from files (``--train-npz``) is the same file for every seed.

Over the seeds, a number is summarised by :func:`stats` (mean, min and max of the finite
values; an FRC crossing never reached enters at its bound and makes the mean and max lower
bounds, ``">= value"``) and shown by :func:`span` as ``mean (min..max)``.
"""
from __future__ import annotations

import logging
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import StudyError
from ptycho.frc import CENSORED_PREFIX, censored_bound
from ptycho_torch.cli import run_entry
from ptycho_torch.studies.common import split_list

log = logging.getLogger(__name__)


def parse_seeds(text: str) -> tuple[int, ...]:
    out = []
    for s in split_list(text):
        if not s.isdigit():
            raise StudyError(f"--seeds: {s!r} is not a seed (allowed: comma-separated integers "
                             ">= 0, e.g. 1,7,42)")
        if int(s) not in out:
            out.append(int(s))
    if len(out) < 2:
        raise StudyError(f"--seeds {text!r} gives {len(out)} seed(s) (allowed: two or more, "
                         "e.g. 1,7,42)")
    return tuple(out)


def pop_seeds(values: dict, what: str) -> tuple[int, ...]:
    """The seeds of ``--seeds`` taken out of parsed ``values`` (``()`` without it); with
    ``--seed`` too, refused (``--seeds`` sets the seed of each ``what``)."""
    text = values.pop("seeds", None)
    if text is None:
        return ()
    if "seed" in values:
        raise StudyError("--seed and --seeds were both given (allowed: one of them; --seeds "
                         f"sets the seed of each {what})")
    return parse_seeds(text)


@dataclass(frozen=True)
class SeedSweep:
    """The runs of one command: a study's options once (``seeds`` empty) or once per seed,
    and the folder the summary over the seeds goes to."""

    runs: tuple
    seeds: tuple[int, ...] = ()
    output_dir: Path = Path(".")


def seed_sweep(options, seeds, study: Callable[[object], StudyConfig],
               restudy: Callable[[object, dict], object]) -> SeedSweep:
    """``options`` once, or once per seed into ``<out>/seed_<s>`` with one dataset cache.
    ``study(options)``: its study config (where it writes, its cache); ``restudy(options,
    changes)``: the options with ``changes`` applied to every study config they hold."""
    run = study(options).run
    out = Path(run.output_dir)
    if not seeds:
        return SeedSweep((options,), (), out)
    cache = run.cache_dir or str(out / "datasets")     # the same datasets for every seed
    return SeedSweep(tuple(restudy(options, {"seed": s, "output_dir": str(out / f"seed_{s}"),
                                             "cache_dir": cache}) for s in seeds),
                     tuple(seeds), out)


def run_seeds(sweep: SeedSweep, plans: list, run_one: Callable, summarise: Callable) -> dict:
    """``run_one(options, plan)`` for every run (its result dict; ``{}`` on the extra ranks of
    a DDP launch stops here); with seeds, ``summarise(sweep, results)`` writes the summary.
    Returns the last run's dict, with ``seeds_summary`` when there are seeds."""
    results = []
    for i, (options, plan) in enumerate(zip(sweep.runs, plans)):
        if sweep.seeds:
            log.info("seed %d: %s", sweep.seeds[i], sweep.output_dir / f"seed_{sweep.seeds[i]}")
        result = run_one(options, plan)
        if not result:
            return {}
        results.append(result)
    if not sweep.seeds:
        return results[0]
    return {**results[-1], "seeds_summary": summarise(sweep, results)}


def plan_each(plan: Callable) -> Callable[[SeedSweep], list]:
    """The plan of a sweep whose runs are planned one by one by ``plan(options)``."""
    return lambda sweep: [plan(options) for options in sweep.runs]


def sweep_main(parse: Callable[[], SeedSweep], plan: Callable[[SeedSweep], list],
               run_one: Callable, summarise: Callable, report: Callable, *, interrupted: str,
               errors: tuple = (StudyError,)) -> int:
    """Every study's command: parse, then ``plan(sweep)`` (every run's plan, every refusal
    before anything runs), run them (:func:`run_seeds`), then ``report(sweep, result)`` on
    stdout. Exit codes: 0 done; 2 refused input (one ``error:`` line); 130 / 143
    interrupted."""
    def parse_all():
        sweep = parse()
        return sweep, plan(sweep)
    code, done = run_entry(parse_all, lambda p: (p[0], run_seeds(*p, run_one, summarise)),
                           interrupted=interrupted, errors=errors)
    if code:
        return code
    sweep, result = done
    if result:
        report(sweep, result)
    return 0


# ------------------------------------------------------------------ one summary format
def stats(values) -> dict:
    """``{"mean", "min", "max"}`` of the finite numbers and censored labels among
    ``values`` (None and non-finite left out; None for all three when nothing is left);
    a censored label enters at its bound, and a mean or max that holds one is written
    ``">= value"`` (the min too when every value is censored)."""
    vals = [v for v in values if isinstance(v, str)
            or (v is not None and math.isfinite(v))]
    nums = [censored_bound(v) if isinstance(v, str) else v for v in vals]
    if not nums:
        return {"mean": None, "min": None, "max": None}
    cens = [isinstance(v, str) for v in vals]
    out = {"mean": statistics.fmean(nums), "min": min(nums), "max": max(nums)}
    if any(cens):
        out["mean"] = f"{CENSORED_PREFIX}{out['mean']:.4g}"
        out["max"] = f"{CENSORED_PREFIX}{out['max']:.4g}"
        if all(cens):
            out["min"] = f"{CENSORED_PREFIX}{out['min']:.4g}"
    return out


def fmt(v, digits: int = 4) -> str:
    """A summary value: ``digits`` significant digits, a censored label as is, '-' when
    absent or not finite."""
    if isinstance(v, str):
        return v
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}g}"


def span(s: dict) -> str:
    """A summary cell: ``mean (min..max)``; '-' without a value."""
    if s["mean"] is None:
        return "-"
    return f"{fmt(s['mean'])} ({fmt(s['min'])}..{fmt(s['max'])})"


def markdown_table(head: list, rows: list) -> str:
    """The markdown table of ``rows`` (lists of cells) under ``head``."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


__all__ = ["SeedSweep", "fmt", "markdown_table", "parse_seeds", "pop_seeds", "run_seeds",
           "plan_each", "seed_sweep", "span", "stats", "sweep_main"]
