"""The dose study's outputs: series, crossovers, the markdown report and the figures."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ptycho.evaluation import align_for_metrics
from ptycho.plotting import (
    distinct_colour,
    dose_curves_figure,
    image_grid_figure,
    save_stacked_figures,
)
from ptycho.study_metrics import format_number, metrics_table
from ptycho_torch.studies.common import settings_line
from ptycho_torch.studies.dose.rules import DOSE_METRICS, RULES, crossover, format_dose
from ptycho_torch.studies.dose.config import DoseConfig
from ptycho_torch.studies.dose.cells import Row, refine_source_ids


def method_order(dc: DoseConfig) -> list[str]:
    archs, engines = dc.methods.architectures, dc.methods.iterative
    names = [f"pinn_{a}" for a in archs] + [f"pinn_{a}@bestval" for a in archs]
    if dc.transfer_from is not None:
        names += [f"pinn_{a}@{format_dose(dc.transfer_from)}" for a in archs]
    for e in engines:
        names += [f"ptychi_{e}", f"ptychi_{e}@heldout", f"ptychi_{e}@oracle"]
    sources = sorted((name for a in archs for name in refine_source_ids(dc, a)),
                     key=lambda name: "@" in name)   # own networks first, then transfers
    for e in dc.methods.refine:
        names += [f"{src}+{e}{rule}" for src in sources for rule in ("", "@heldout")]
    return names


def metric_series(rows: list[Row], doses, methods, key: str, channel: int) -> dict:
    """``{method: [value per dose]}`` (NaN where a cell is missing; a censored FRC crossing at
    its bound, ``RULES['frc']``)."""
    table = {(r.method, r.dose): r.metrics.value(key, channel, censored_at_bound=True)
             for r in rows}
    return {m: [table.get((m, d), math.nan) for d in doses] for m in methods}


def method_families(methods) -> dict[str, list[str]]:
    """The three families a headline compares: network rows (any ``pinn_*`` without ``+``),
    ground-truth-free Pty-chi rows (``ptychi_*`` but ``@oracle``) and network + iteration
    rows (``<network>+<engine>``, any rule)."""
    return {"network": [m for m in methods if m.startswith("pinn_") and "+" not in m],
            "iterative": [m for m in methods if m.startswith("ptychi_")
                          and not m.endswith("@oracle")],
            "refined": [m for m in methods if "+" in m]}


def best_series(series: dict, members, n_doses: int) -> list[float]:
    """The best value among ``members`` at each dose (NaN where none has one)."""
    return [_nanmax([series[m][i] for m in members]) for i in range(n_doses)]


def crossovers(rows: list[Row], doses, methods) -> dict:
    """Per metric of :data:`DOSE_METRICS`: best network row vs best ground-truth-free
    iterative row (see ``RULES['crossover']``)."""
    fam = method_families(methods)
    nets, its = fam["network"], fam["iterative"]
    out = {}
    for _, key, ch, name in DOSE_METRICS:
        series = metric_series(rows, doses, methods, key, ch)
        if not nets or not its:
            out[name] = {"dose": None, "reason": "needs network and iterative rows",
                         "crossings": []}
            continue
        best = best_series(series, nets, len(doses)), best_series(series, its, len(doses))
        out[name] = {**crossover(doses, *best), "network_best": best[0], "iterative_best": best[1],
                     "network_methods": nets, "iterative_methods": its}
    return out


def headline_panels(rows: list[Row], doses, methods) -> dict:
    """Per panel of :data:`DOSE_METRICS`, at most three lines: the best network row, the best
    ground-truth-free iterative row and the best network + iteration row at each dose (the
    first two are the curves the crossover is taken between), each label saying how many
    rows it is the best of. Families without rows are left out."""
    fam = method_families(methods)
    what = {"network": "network", "iterative": "ground-truth-free iterative",
            "refined": "network + iteration"}
    panels = {}
    for label, key, ch, _ in DOSE_METRICS:
        series = metric_series(rows, doses, methods, key, ch)
        panels[label] = {f"best {what[f]} (of {len(ms)} row{'s' * (len(ms) != 1)})":
                         best_series(series, ms, len(doses)) for f, ms in fam.items() if ms}
    return panels


#: line style of each headline family (in the order of :func:`method_families`)
HEADLINE_STYLES = ({"color": "tab:blue", "marker": "o", "lw": 2.2},
                   {"color": "tab:orange", "marker": "s", "lw": 2.2},
                   {"color": "tab:green", "marker": "^", "lw": 2.2})


def _nanmax(values) -> float:
    v = [x for x in values if math.isfinite(x)]
    return max(v) if v else math.nan


def dose_table(rows: list[Row]) -> str:
    """:func:`metrics_table` with a leading photons column (one row per (method, dose))."""
    lines = metrics_table([r.metrics for r in rows]).splitlines()
    out = ["| photons " + lines[0], "|---" + lines[1]]
    out += [f"| {format_dose(r.dose)} " + ln for r, ln in zip(rows, lines[2:])]
    return "\n".join(out)


def markdown_report(dc: DoseConfig, rows: list[Row], cross: dict) -> str:
    m = dc.methods
    parts = ["# Dose study", "",
             f"Doses (photons per pattern): {', '.join(format_dose(d) for d in dc.doses)}; "
             f"{settings_line(dc.base, skip=('nphotons', 'loss'))}; "
             f"loss: {dc.loss or 'by dose (rule below)'}; Pty-chi: "
             f"{', '.join(m.iterative) or 'none'} ({m.iterative_epochs} epochs, held-out "
             f"evaluation every {dc.heldout_every}); transfer from: "
             f"{format_dose(dc.transfer_from) if dc.transfer_from is not None else 'none'}; "
             f"refined: {', '.join(m.refine) or 'none'}"
             + (f" ({m.refine_epochs} epochs from each network's object)." if m.refine else "."),
             "", "## Crossover", ""]
    for label, _, _, name in DOSE_METRICS[:2]:
        c = cross[name]
        where = (f"{c['dose']:.3g} photons per pattern" if c["dose"] is not None
                 else f"none ({c['reason']})")
        parts.append(f"- {label}: {where}")
    parts += ["", "## Selected epochs", "", "| method | " + " | ".join(
        format_dose(d) for d in dc.doses) + " |", "|---|" + "---|" * len(dc.doses)]
    epochs = {(r.method, r.dose): r.metrics.epochs_completed for r in rows}
    for name in method_order(dc):
        if ("@" in name and "+" not in name
                and not name.endswith(("@heldout", "@oracle", "@bestval"))):
            continue
        parts.append(f"| {name} | " + " | ".join(
            format_number(epochs.get((name, d))) for d in dc.doses) + " |")
    parts += ["", "## Every (method, dose)", "", dose_table(rows), "",
              "## Rules", ""] + [f"- {k}: {v}." for k, v in RULES.items()] + [
              "", "Metrics as in the comparison (docs/guide/studies.md, 'Reading the metrics'): 2 px "
              "trimmed, amplitude "
              "scaled by mean(gt)/mean(pred), the global phase and phase ramp removed; "
              "'data residual' is the ground-truth-free amplitude MAE over the full test "
              "scan.", ""]
    return "\n".join(parts)


#: Selection-rule suffixes: a row ``<base>@<rule>`` shares its base's colour.
RULE_SUFFIXES = ("@heldout", "@oracle", "@bestval")


def _style(method: str) -> dict:
    """Line style and marker by kind: networks o, Pty-chi s, refined ^; the selection rule
    by line style (held-out -., oracle and best-validation :, transfer --)."""
    if "+" in method:  # refined: an engine started at a network's object
        return {"ls": "-." if method.endswith("@heldout") else "-", "marker": "^", "lw": 1.8}
    if method.startswith("ptychi_"):
        ls = {"heldout": "-.", "oracle": ":"}.get(method.partition("@")[2], "-")
        return {"ls": ls, "marker": "s", "lw": 1.2 if ls == ":" else 1.8}
    suffix = method.partition("@")[2]
    return {"ls": "-" if not suffix else (":" if suffix == "bestval" else "--"), "marker": "o"}


def line_styles(methods: list[str]) -> dict[str, dict]:
    """Matplotlib keywords per method: :func:`_style` plus one colour per base method (the
    name without a selection-rule suffix), distinct for up to 20 bases (tab20), so a sweep
    with refined and transfer rows does not reuse the default cycle's 10 colours."""
    bases: dict[str, int] = {}
    out = {}
    for m in methods:
        base = next((m[:-len(s)] for s in RULE_SUFFIXES if m.endswith(s)), m)
        out[m] = {**_style(m), "color": distinct_colour(bases.setdefault(base, len(bases)))}
    return out


def save_figures(dc: DoseConfig, rows: list[Row], cross: dict) -> list[Path]:
    methods = [m for m in method_order(dc) if any(r.method == m for r in rows)]
    panels = {label: metric_series(rows, dc.doses, methods, key, ch)
              for label, key, ch, _ in DOSE_METRICS}
    marks = {label: cross[name]["dose"] for label, _, _, name in DOSE_METRICS}
    cross_text = ("dashed vertical: crossover of the best network and the best "
                  "ground-truth-free iterative row")
    head = headline_panels(rows, dc.doses, methods)
    styles = {label: st for panel in head.values() for label, st in
              zip(panel, HEADLINE_STYLES)}
    out = [save_stacked_figures(dc.output_dir / "dose_study.png", [dose_curves_figure(
        dc.doses, head, marks, styles,
        title=f"test object 0 against photons per pattern, best row of each kind ({cross_text})")]),
        save_stacked_figures(dc.output_dir / "dose_study_all.png", [dose_curves_figure(
            dc.doses, panels, marks, line_styles(methods),
            title=f"test object 0 against photons per pattern, every row ({cross_text})")])]
    images, gt, cols = {}, None, [format_dose(d) for d in dc.doses]
    for r in rows:
        with np.load(r.layout.recon_dir / "recon.npz") as z:
            if "ground_truth" not in z.files:
                continue
            _, _, ph, ph_gt = align_for_metrics(z["reconstruction"], z["ground_truth"],
                                                register=r.metrics.registration_shift_px is not None)
        images[(r.method, format_dose(r.dose))] = ph
        if gt is None:
            gt = ph_gt
    if gt is not None:
        for c in cols:
            images[("ground truth", c)] = gt
        lo, hi = np.percentile(gt, [0.5, 99.5])
        fig = image_grid_figure(images, ["ground truth"] + methods, cols, vmin=lo, vmax=hi,
                                title="phase (rad, aligned as scored): method by photons per pattern")
        out.append(save_stacked_figures(dc.output_dir / "dose_grid.png", [fig], dpi=80))
    return out
