"""The learning curve over seeds (``learning_curve.py --seeds 1,7,42``): one curve per seed,
then each budget's scores as mean (min..max).

Seed ``s`` trains and scores into ``<output-dir>/seed_<s>/`` (its ``learning_curve.json`` and
``.png``). The seed sets the initial weights, the train / validation split and the data
order; the simulated dataset keeps its own fixed seeds, and one dataset cache
(``<output-dir>/datasets`` unless ``--cache-dir``) serves every seed. A seed whose curve is
finished with the same settings is reused; one finished with other settings is refused
before anything trains, unless ``--overwrite`` (which retrains every seed).

Written in ``<output-dir>``: ``seeds.json`` (per panel metric and budget, the value per seed
and the mean, min and max), ``seeds.md`` (the same as a table) and
``learning_curve_seeds.png`` (the mean against the budget with its min..max band).
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from ptycho.artifacts import write_json_atomic, write_text_atomic
from ptycho.config.study_config import StudyConfig
from ptycho.plotting import save_learning_curves_over_seeds
from ptycho_torch.studies.common import comparable
from ptycho_torch.studies.learning_curve.budget_snapshots import _fmt_budget
from ptycho_torch.studies.learning_curve.config import (
    BUDGET_UNITS,
    JSON_NAME,
    PANELS,
    LearningCurveConfig,
)
from ptycho_torch.studies.options.learning_curve import sweep_from_argv  # noqa: F401  (re-exported: imported from here)
from ptycho_torch.studies.rows import Wanted, finished_row, reuse_or_compute
from ptycho_torch.studies.sweep import SeedSweep, markdown_table, span, stats

log = logging.getLogger(__name__)

SEEDS_PNG = "learning_curve_seeds.png"


def _settings(study: StudyConfig) -> dict:
    # the budget's epochs follow from the training-set size; the budgets themselves are
    # compared separately
    return {k: v for k, v in comparable(study).items() if k != "epochs"}


def _curve_key(study: StudyConfig, kind: str, budgets, lsqml_epochs, reference_json) -> dict:
    return {"study": _settings(study), "kind": kind, "budgets": list(budgets),
            "lsqml_epochs": lsqml_epochs, "reference_json": reference_json}


def _read_curve(path: Path) -> tuple[dict, dict]:
    done = json.loads(path.read_text())
    c = done["config"]
    return done, _curve_key(StudyConfig.from_dict(c["study"]), done["budget_kind"],
                            done["budgets"], c["lsqml_epochs"], c["reference_json"])


def curve_row(lc: LearningCurveConfig) -> Wanted:
    """A seed's learning curve as a row: ``learning_curve.json``, keyed by its settings, its
    budgets and its references."""
    def refusal(_old) -> str:
        return (f"output_dir={str(lc.output_dir)!r} already holds a learning curve with other "
                "settings; pass --overwrite to replace it or choose another --output-dir")
    key = _curve_key(lc.study, lc.kind, lc.budgets, lc.lsqml_epochs, lc.reference_json)
    return Wanted("learning curve", lc.output_dir / JSON_NAME, key, _read_curve, refusal)


def plan_curves(sweep: SeedSweep) -> list[str | None]:
    """Per seed ``'reuse'`` (finished, same settings) or ``'run'``; writes nothing. One
    curve (no seeds) is never reused: None (its checks are :func:`preflight`'s)."""
    if not sweep.seeds:
        return [None]
    return ["run" if finished_row(curve_row(lc), lc.study.run.overwrite) is None else "reuse"
            for lc in sweep.runs]


def summarise_curves(seeds, results: list[dict]) -> dict:
    """``{metric: {"per_seed": {seed: [value per budget]}, "mean", "min", "max"}}`` (lists
    over the budgets) for the metrics of the figure's panels."""
    n = len(results[0]["budgets"])
    out = {}
    for key, _ in PANELS:
        per = {int(s): [None] * n for s in seeds}
        for s, r in zip(seeds, results):
            index = {p["budget"]: p for p in r["points"]}
            per[int(s)] = [_finite(index.get(b, {}).get(key)) for b in r["budgets"]]
        cols = [stats([per[int(s)][i] for s in seeds]) for i in range(n)]
        out[key] = {"per_seed": per, **{k: [c[k] for c in cols] for k in ("mean", "min", "max")}}
    return out


def _finite(v):
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def summary_table(seeds, budgets, kind: str, summary: dict) -> str:
    return markdown_table(["budget", *(t for _, t in PANELS)], [
        [f"{_fmt_budget(b)} {kind}", *(span({s: summary[k][s][i] for s in ("mean", "min", "max")})
                                       for k, _ in PANELS)] for i, b in enumerate(budgets)])


def run_curve(lc: LearningCurveConfig, plan: str | None, run_one) -> dict:
    """One curve's ``learning_curve.json`` dict: ``run_one(lc)``, or with seeds the
    finished curve with the same settings (:mod:`ptycho_torch.studies.rows`)."""
    if plan is None:
        return run_one(lc)
    return reuse_or_compute(curve_row(lc), lambda: run_one(lc),
                            overwrite=lc.study.run.overwrite, what="curve")


def write_curve_summary(sweep: SeedSweep, results: list[dict]) -> dict:
    """``seeds.json``, ``seeds.md`` and ``learning_curve_seeds.png``; returns the JSON."""
    first = sweep.runs[0]
    summary = summarise_curves(sweep.seeds, results)
    out = sweep.output_dir
    save_learning_curves_over_seeds(out / SEEDS_PNG, sweep.seeds, list(first.budgets),
                                    BUDGET_UNITS[first.kind], summary, PANELS)
    write_text_atomic(out / "seeds.md", "\n".join([
        "# Learning curve over seeds", "",
        f"Seeds {', '.join(map(str, sweep.seeds))}; each curve in seed_<s>/ ({JSON_NAME}). "
        "Cells: mean (min..max) over the seeds.", "",
        summary_table(sweep.seeds, first.budgets, first.kind, summary), ""]))
    result = {"seeds": list(sweep.seeds), "budget_kind": first.kind,
              "budgets": list(first.budgets), "summary": summary,
              "curves": [str(lc.output_dir) for lc in sweep.runs]}
    write_json_atomic(out / "seeds.json", result)
    return result


__all__ = ["curve_row", "plan_curves", "run_curve", "summarise_curves", "summary_table",
           "sweep_from_argv", "write_curve_summary"]
