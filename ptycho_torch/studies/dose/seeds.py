"""The dose study over seeds (``ptycho-dose-study --seeds 1,7,42``): one sweep per seed, then
what holds over them.

Seed ``s`` runs the whole sweep into ``<output-dir>/seed_<s>/`` (finished cells are reused,
as in one sweep; the sweep over seeds is every study's, :mod:`ptycho_torch.studies.sweep`).
The seed sets each network's initial weights, its train / validation split
and data order, the held-out positions of the ``@heldout`` rule and Pty-chi's seeded steps;
the simulated datasets keep their own fixed seeds, so every seed sees the same counts.

Written in ``<output-dir>``:

* ``seeds.json``: per crossover metric, the crossover dose of every seed (``null`` with its
  reason where the lines do not meet) and, over the seeds that have one, the geometric mean,
  min and max; per headline family (:func:`ptycho_torch.studies.dose.report.method_families`)
  and metric, the best row's value at each dose per seed, with mean, min and max;
* ``seeds.md``: the same as tables;
* ``dose_study_seeds.png``: the headline figure over seeds: per panel, the mean of each
  family's best row with its min..max band, and the crossover's geometric mean (dashed) with
  its range over the seeds (shaded).

One dataset cache, ``<output-dir>/datasets`` (or ``--cache-dir``), serves every seed.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path

from ptycho.artifacts import write_json_atomic, write_text_atomic
from ptycho.plotting import dose_curves_figure, save_stacked_figures
from ptycho.study_metrics import StudyMetrics
from ptycho_torch.studies.options.dose import sweep_from_argv  # noqa: F401  (re-exported: imported from here)
from ptycho_torch.studies.dose.report import HEADLINE_STYLES, best_series, method_families
from ptycho_torch.studies.dose.rules import DOSE_METRICS, format_dose
from ptycho_torch.studies.sweep import SeedSweep, fmt, span, stats

FAMILY_LABELS = {"network": "best network", "iterative": "best ground-truth-free iterative",
                 "refined": "best network + iteration"}


def crossover_summary(seeds, results: list[dict]) -> dict:
    """``{metric: {"per_seed": {seed: dose | None}, "reasons": {seed: str}, "n_crossing",
    "geometric_mean", "min", "max"}}`` from each seed's ``dose_study.json`` dict."""
    out = {}
    for _, _, _, name in DOSE_METRICS:
        per, reasons = {}, {}
        for s, r in zip(seeds, results):
            c = r["crossover"][name]
            per[int(s)] = c["dose"]
            if c["dose"] is None:
                reasons[int(s)] = c.get("reason")
        found = [d for d in per.values() if d is not None]
        out[name] = {"per_seed": per, "reasons": reasons, "n_crossing": len(found),
                     "geometric_mean": (10 ** statistics.fmean(math.log10(d) for d in found)
                                        if found else None),
                     "min": min(found) if found else None, "max": max(found) if found else None}
    return out


def family_summary(seeds, results: list[dict]) -> dict:
    """``{metric: {family: {"per_seed": {seed: [value per dose]}, "mean": [...], "min":
    [...], "max": [...]}}}``: each family's best row at each dose, per seed and over them."""
    doses = results[0]["doses"]
    out = {}
    for _, key, ch, name in DOSE_METRICS:
        fams: dict[str, dict] = {}
        for s, r in zip(seeds, results):
            table = {(row["method"], row["nphotons"]):
                     StudyMetrics.from_json(row).value(key, ch, censored_at_bound=True)
                     for row in r["rows"]}
            series = {m: [table.get((m, d), math.nan) for d in doses] for m in r["methods"]}
            for fam, members in method_families(r["methods"]).items():
                if members:
                    best = best_series(series, members, len(doses))
                    fams.setdefault(fam, {"per_seed": {}})["per_seed"][int(s)] = best
        for fam in fams.values():
            cols = [stats([fam["per_seed"][int(s)][i] for s in seeds if int(s) in fam["per_seed"]])
                    for i in range(len(doses))]
            for k in ("mean", "min", "max"):
                fam[k] = [c[k] for c in cols]
        out[name] = fams
    return out


def seeds_markdown(seeds, doses, cross: dict, fams: dict) -> str:
    lines = ["# Dose study over seeds", "",
             f"Seeds {', '.join(map(str, seeds))}; each sweep in seed_<s>/ (dose_study.md).", "",
             "## Crossovers", "",
             "| metric | " + " | ".join(f"seed {s}" for s in seeds)
             + " | geometric mean | min..max |", "|---|" + "---|" * (len(seeds) + 2)]
    for label, _, _, name in DOSE_METRICS:
        c = cross[name]
        cells = [fmt(c["per_seed"][int(s)], 3) if c["per_seed"][int(s)] is not None
                 else f"none ({c['reasons'].get(int(s))})" for s in seeds]
        rng = (f"{fmt(c['min'], 3)}..{fmt(c['max'], 3)}" if c["n_crossing"] else "-")
        lines.append(f"| {label} | " + " | ".join(cells)
                     + f" | {fmt(c['geometric_mean'], 3)} | {rng} |")
    lines += ["", "## Best row of each kind: mean (min..max) over the seeds", ""]
    for label, _, _, name in DOSE_METRICS:
        lines += [f"### {label}", "", "| row | " + " | ".join(format_dose(d) for d in doses)
                  + " |", "|---|" + "---|" * len(doses)]
        for fam, f in fams[name].items():
            lines.append(f"| {FAMILY_LABELS[fam]} | " + " | ".join(
                span({"mean": m, "min": lo, "max": hi}) for m, lo, hi in
                zip(f["mean"], f["min"], f["max"])) + " |")
        lines.append("")
    return "\n".join(lines)


def save_seeds_figure(path: Path, seeds, doses, cross: dict, fams: dict) -> Path:
    panels, bands, marks, spans, styles = {}, {}, {}, {}, {}
    for label, _, _, name in DOSE_METRICS:
        panels[label], bands[label] = {}, {}
        for (fam, f), st in zip(fams[name].items(), HEADLINE_STYLES):
            line = f"{FAMILY_LABELS[fam]} (mean, band: min..max)"
            panels[label][line] = [math.nan if v is None else v for v in f["mean"]]
            bands[label][line] = ([math.nan if v is None else v for v in f["min"]],
                                  [math.nan if v is None else v for v in f["max"]])
            styles[line] = st
        c = cross[name]
        marks[label] = c["geometric_mean"]
        if c["n_crossing"]:
            spans[label] = (c["min"], c["max"])
    fig = dose_curves_figure(
        doses, panels, marks, styles, bands=bands, spans=spans,
        title=f"best row of each kind over seeds {', '.join(map(str, seeds))} (dashed: the "
              "crossover's geometric mean; shaded: its range)")
    return save_stacked_figures(path, [fig])


def write_seed_summary(sweep: SeedSweep, results: list[dict]) -> dict:
    """``seeds.json``, ``seeds.md`` and ``dose_study_seeds.png`` in the sweep's folder."""
    seeds, doses = sweep.seeds, results[0]["doses"]
    cross, fams = crossover_summary(seeds, results), family_summary(seeds, results)
    out = sweep.output_dir
    summary = {"seeds": list(seeds), "doses": doses, "crossover": cross, "families": fams,
               "sweeps": [str(dc.output_dir) for dc in sweep.runs]}
    save_seeds_figure(out / "dose_study_seeds.png", seeds, doses, cross, fams)
    write_text_atomic(out / "seeds.md", seeds_markdown(seeds, doses, cross, fams))
    write_json_atomic(out / "seeds.json", summary)
    return summary


__all__ = ["crossover_summary", "family_summary", "save_seeds_figure",
           "seeds_markdown", "write_seed_summary"]
