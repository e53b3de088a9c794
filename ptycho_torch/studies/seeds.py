"""One study per seed, and what holds over them (``ptycho-seeds`` / ``scripts/studies/seed_sweep.py``).

    python scripts/studies/seed_sweep.py --seeds 1,7,42 --preset quick --output-dir outputs/seeds

Every study flag applies; ``--seeds`` replaces ``--seed``. Seed ``s`` runs the study into
``<output-dir>/seed_<s>`` (a finished one is reused, as a study always is), then
``seeds.json`` and ``seeds.md`` give, for each metric, its value per seed and the mean, min
and max. An FRC crossing that a seed's curve never reached (censored, ``">= 0.5"``) is
shown as that label for the seed; it enters the mean, min and max at its bound (0.5), and a
mean or max that holds one is a lower bound, written ``">= value"``. The seed controls
the network's initial weights, the train / validation split, the data order and the seeded
Pty-chi steps of the probe route; the simulated dataset keeps its own fixed seeds (the
reference's), so every seed sees the same data.
"""
from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from pathlib import Path

from ptycho.artifacts import write_json_atomic, write_text_atomic
from ptycho.config.cli import build_parser, config_from_values, parse_known
from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import StudyError
from ptycho.frc import CENSORED_PREFIX, censored_bound
from ptycho_torch.cli import run_entry
from ptycho_torch.studies.common import plan_study, run_or_reuse, split_list

log = logging.getLogger(__name__)

#: (label, metrics.json key, index of [amplitude, phase] or None)
SUMMARY = (("amp SSIM", "ssim", 0), ("phase SSIM", "ssim", 1), ("amp PSNR", "psnr", 0),
           ("phase PSNR", "psnr", 1), ("amp FRC50", "frc50", 0), ("phase corr",
           "phase_correlation", None), ("data residual", "data_residual", "amplitude_mae"),
           ("train s", "train_time_s", None), ("total s", "total_time_s", None))


@dataclass(frozen=True)
class SeedSweep:
    seeds: tuple[int, ...]
    studies: tuple[StudyConfig, ...]
    output_dir: Path


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


def config_from_argv(argv=None, prog: str = "seed_sweep.py") -> SeedSweep:
    p = build_parser(prog, "Run one study per seed and summarise every metric over them "
                           "(mean, min, max).", exclude=("seed",))
    p.add_argument("--seeds", required=True, help="comma-separated seeds, e.g. 1,7,42")
    values = parse_known(p, argv)
    seeds = parse_seeds(values.pop("seeds"))
    base = config_from_values(values)
    out = Path(base.run.output_dir)
    studies = tuple(base.replace(seed=s, output_dir=str(out / f"seed_{s}")) for s in seeds)
    return SeedSweep(seeds, studies, out)


def plan_sweep(sweep: SeedSweep) -> list[str]:
    """Each seed's plan (``reuse`` or ``run``), every check before the first write."""
    return [plan_study(cfg) for cfg in sweep.studies]


def _value(m: dict, key: str, index):
    """The number, None when absent, or the censored label of an FRC never crossed."""
    v = m.get(key)
    if isinstance(index, int):
        flags = m.get(f"{key}_censored")
        if isinstance(flags, list) and len(flags) > index and censored_bound(flags[index]):
            return flags[index]
    if v is None:
        return None
    if isinstance(index, int):
        v = v[index] if isinstance(v, list) and len(v) > index else None
    elif isinstance(index, str):
        v = v.get(index) if isinstance(v, dict) else None
    return float(v) if isinstance(v, (int, float)) else None


def _stats(values: list) -> dict:
    """Mean, min and max of numbers and censored labels (at their bound); a mean or max
    that holds a censored value is its lower bound ``">= value"``."""
    nums = [censored_bound(v) if isinstance(v, str) else v for v in values]
    if not nums:
        return {"mean": None, "min": None, "max": None}
    cens = [isinstance(v, str) for v in values]
    out = {"mean": statistics.fmean(nums), "min": min(nums), "max": max(nums)}
    if any(cens):
        out["mean"] = f"{CENSORED_PREFIX}{out['mean']:.4g}"
        out["max"] = f"{CENSORED_PREFIX}{out['max']:.4g}"
        if all(cens):
            out["min"] = f"{CENSORED_PREFIX}{out['min']:.4g}"
    return out


def summarise(seeds, rows: list[dict]) -> dict:
    """``{label: {"per_seed": {seed: value}, "mean", "min", "max"}}`` over the seeds (a
    censored FRC as in the module docstring)."""
    out = {}
    for label, key, index in SUMMARY:
        per = {int(s): _value(m, key, index) for s, m in zip(seeds, rows)}
        out[label] = {"per_seed": per, **_stats([v for v in per.values() if v is not None])}
    return out


def summarise_methods(seeds, rows_per_seed: list[list[dict]]) -> dict:
    """``{model_id: summarise(...)}`` for every method of a study with several rows (a
    comparison), in the order of the first seed's rows; a method missing at a seed counts as
    no value there."""
    ids = [m["model_id"] for m in rows_per_seed[0]]
    by_seed = [{m["model_id"]: m for m in rows} for rows in rows_per_seed]
    return {i: summarise(seeds, [rows.get(i, {}) for rows in by_seed]) for i in ids}


#: the columns of :func:`methods_table`
METHOD_COLUMNS = ("amp SSIM", "phase SSIM", "amp PSNR", "phase PSNR", "phase corr",
                  "data residual")


def methods_table(summary: dict) -> str:
    """One row per method, each cell ``mean (min..max)`` over the seeds."""
    def cell(row):
        if row["mean"] is None:
            return "-"
        return f"{_fmt(row['mean'])} ({_fmt(row['min'])}..{_fmt(row['max'])})"
    lines = ["| method | " + " | ".join(METHOD_COLUMNS) + " |",
             "|---|" + "---|" * len(METHOD_COLUMNS)]
    for mid, per in summary.items():
        lines.append(f"| {mid} | " + " | ".join(cell(per[c]) for c in METHOD_COLUMNS) + " |")
    return "\n".join(lines)


def _fmt(v) -> str:
    return "-" if v is None else v if isinstance(v, str) else f"{v:.4g}"


def table(seeds, summary: dict) -> str:
    head = ["metric"] + [f"seed {s}" for s in seeds] + ["mean", "min", "max"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, row in summary.items():
        lines.append("| " + " | ".join([label] + [_fmt(row["per_seed"][s]) for s in seeds]
                                       + [_fmt(row["mean"]), _fmt(row["min"]), _fmt(row["max"])])
                     + " |")
    return "\n".join(lines)


def run_seed_sweep(sweep: SeedSweep, plans: list[str]) -> dict:
    rows = []
    for seed, cfg in zip(sweep.seeds, sweep.studies):
        log.info("seed %d: %s", seed, cfg.run.output_dir)
        m = run_or_reuse(cfg)
        if m is None:            # an extra DDP rank
            return {}
        rows.append(m.to_json())
    summary = summarise(sweep.seeds, rows)
    result = {"seeds": list(sweep.seeds), "model_id": sweep.studies[0].model_id,
              "summary": summary, "study": sweep.studies[0].replace(seed=0).to_dict()}
    write_json_atomic(sweep.output_dir / "seeds.json", result)
    write_text_atomic(sweep.output_dir / "seeds.md", table(sweep.seeds, summary) + "\n")
    return result


def main(argv=None) -> int:
    """``seed_sweep.py``. Exit codes: 0 done; 2 refused input; 130 (SIGINT) or 143 (SIGTERM)
    interrupted (run the same command again: finished seeds are reused)."""
    def parse():
        sweep = config_from_argv(argv)
        return sweep, plan_sweep(sweep)
    code, done = run_entry(parse, lambda parsed: (parsed[0], run_seed_sweep(*parsed)),
                           interrupted="run the same command again (finished seeds are "
                                       "reused; add --resume to continue a training)")
    if code == 0 and done and done[1]:
        print(table(done[0].seeds, done[1]["summary"]))
    return code


__all__ = ["METHOD_COLUMNS", "SeedSweep", "config_from_argv", "main", "methods_table",
           "parse_seeds", "plan_sweep", "run_seed_sweep", "summarise", "summarise_methods",
           "table"]
