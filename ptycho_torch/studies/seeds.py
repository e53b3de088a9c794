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
reference's), so every seed sees the same data, simulated once into ``<output-dir>/datasets``
(or ``--cache-dir``). The sweep is :mod:`.sweep`'s, as every study's; this module also
holds the summary of study rows over seeds (:func:`summarise`, :func:`summarise_methods`).
"""
from __future__ import annotations

from typing import Callable

from ptycho.artifacts import write_json_atomic, write_text_atomic
from ptycho.frc import censored_bound
from ptycho.metric_catalogue import metrics
from ptycho_torch.studies.common import plan_study, run_or_reuse
from ptycho_torch.studies.options.seeds import (  # noqa: F401  (re-exported: imported from here)
    SeedsOptions,
    config_from_argv,
)
from ptycho_torch.studies.sweep import (
    SeedSweep,
    fmt,
    markdown_table,
    parse_seeds,
    span,
    stats,
    plan_each,
    sweep_main,
)

#: (label, metrics.json key, index of [amplitude, phase], data_residual entry or None)
SUMMARY = tuple((m.header, m.record, m.channel) for m in metrics(
    "amp_ssim", "phase_ssim", "amp_psnr", "phase_psnr", "amp_frc50", "phase_correlation",
    "amp_two_half_frc50", "phase_two_half_frc50", "neighbour_disagreement", "data_residual",
    "train_time_s", "total_time_s"))


def plan_sweep(sweep: SeedSweep) -> list[str]:
    """Each seed's plan (``reuse`` or ``run``), every check before the first write."""
    return [plan_study(cfg) for cfg in sweep.runs]


def _value(m: dict, key: str, index):
    """The number, None when absent, or the censored label of an FRC never crossed; an
    ``index`` pair ``(name, channel)`` reads the list ``name`` of the dict ``m[key]``."""
    if isinstance(index, tuple):
        name, index = index
        m, key = (m.get(key) or {}), name
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


def summarise(seeds, rows: list[dict]) -> dict:
    """``{label: {"per_seed": {seed: value}, "mean", "min", "max"}}`` over the seeds (a
    censored FRC as in the module docstring)."""
    out = {}
    for label, key, index in SUMMARY:
        per = {int(s): _value(m, key, index) for s, m in zip(seeds, rows)}
        out[label] = {"per_seed": per, **stats(per.values())}
    return out


def summarise_methods(seeds, rows_per_seed: list[list[dict]]) -> dict:
    """``{model_id: summarise(...)}`` for every method of a study with several rows (a
    comparison), in the order of the first seed's rows; a method missing at a seed counts as
    no value there."""
    ids = [m["model_id"] for m in rows_per_seed[0]]
    by_seed = [{m["model_id"]: m for m in rows} for rows in rows_per_seed]
    return {i: summarise(seeds, [rows.get(i, {}) for rows in by_seed]) for i in ids}


#: the columns of :func:`methods_table`
METHOD_COLUMNS = tuple(m.header for m in metrics("amp_ssim", "phase_ssim", "amp_psnr",
                                                 "phase_psnr", "phase_correlation",
                                                 "data_residual"))


def methods_table(summary: dict) -> str:
    """One row per method, each cell ``mean (min..max)`` over the seeds."""
    return markdown_table(["method", *METHOD_COLUMNS],
                          [[mid, *(span(per[c]) for c in METHOD_COLUMNS)]
                           for mid, per in summary.items()])


def table(seeds, summary: dict) -> str:
    head = ["metric"] + [f"seed {s}" for s in seeds] + ["mean", "min", "max"]
    return markdown_table(head, [[label, *(fmt(row["per_seed"][s]) for s in seeds),
                                  fmt(row["mean"]), fmt(row["min"]), fmt(row["max"])]
                                 for label, row in summary.items()])


def _study_row(cfg, _plan) -> dict:
    m = run_or_reuse(cfg)
    return {} if m is None else m.to_json()     # {}: an extra DDP rank


def write_summary(sweep: SeedSweep, rows: list[dict]) -> dict:
    """``seeds.json`` and ``seeds.md`` of the studies' metrics records; returns the JSON."""
    summary = summarise(sweep.seeds, rows)
    first = sweep.runs[0]
    result = {"seeds": list(sweep.seeds), "model_id": first.model_id, "summary": summary,
              "study": first.replace(seed=0).to_dict()}
    write_json_atomic(sweep.output_dir / "seeds.json", result)
    write_text_atomic(sweep.output_dir / "seeds.md", table(sweep.seeds, summary) + "\n")
    return result


def run(parse: Callable[[], SeedSweep]) -> int:
    """The studies of ``parse()`` (the sweep), their summary and its table. Exit codes: 0
    done; 2 refused input; 130 (SIGINT) or 143 (SIGTERM) interrupted (run the same command
    again: finished seeds are reused)."""
    return sweep_main(parse, plan_each(plan_study), _study_row, write_summary,
                      lambda sweep, r: print(table(sweep.seeds, r["seeds_summary"]["summary"])),
                      interrupted="run the same command again (finished seeds are "
                                  "reused; add --resume to continue a training)")


def main(argv=None) -> int:
    """The seed sweep of the flags ``argv``, in this process (the ``ptycho-seeds`` command is
    :func:`ptycho_torch.studies.commands.seeds_main`: its flags checked before torch
    loads)."""
    return run(lambda: config_from_argv(argv))


__all__ = ["METHOD_COLUMNS", "SeedSweep", "config_from_argv", "main", "methods_table",
           "parse_seeds", "plan_sweep", "run", "summarise", "summarise_methods", "table",
           "write_summary"]
