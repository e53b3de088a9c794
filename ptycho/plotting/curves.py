"""Curve figures: Fourier ring correlation, metrics against dose, learning curves against a
training budget. No figure leaves an empty panel (a grid with an odd count drops its last
axes)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ptycho.artifacts import save_figure_atomic
from ptycho.plotting.panels import _plt, method_label


def distinct_colour(index: int):
    """The ``index``-th of 20 distinct colours (matplotlib's tab20, dark shades first)."""
    from matplotlib import colormaps
    return colormaps["tab20"]((2 * index) % 20 + (index // 10) % 2)  # an int indexes the 20 colours


def frc_figure(curves: dict, title: str = "Fourier ring correlation"):
    """``curves`` maps a method id to ``(freqs, frc_amplitude, frc_phase)``; lines are named
    by :func:`method_label`."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, (f, fa, fp) in curves.items():
        axes[0].plot(f, fa, label=method_label(label))
        axes[1].plot(f, fp, label=method_label(label))
    for ax, name in zip(axes, ("amplitude", "phase")):
        ax.axhline(0.5, color="k", lw=0.8, ls="--", label="0.5 threshold")
        ax.set_xlabel("spatial frequency (cycles / pixel)")
        ax.set_ylabel("FRC")
        ax.set_title(f"{title}: {name}")
        ax.set_xlim(0, 0.5)
        ax.set_ylim(-0.1, 1.05)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _panel_grid(n: int, width: float, height: float, cols: int = 2):
    """``(fig, axes)``: ``n`` axes in rows of ``cols`` (one column for a single panel); the
    unused axes of the last row are removed."""
    plt = _plt()
    cols = cols if n > 1 else 1
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        fig.delaxes(ax)
    return fig, list(axes.flat)[:n]


def dose_curves_figure(doses, panels: dict, crossovers: dict | None = None,
                       styles: dict | None = None, title: str = "", bands: dict | None = None,
                       spans: dict | None = None):
    """Metrics against photons per pattern (log x axis), one line per method.

    ``panels`` maps a panel title to ``{method: values}`` (one value per dose, NaN where
    absent); ``crossovers`` maps a panel title to a dose (or None) marked by a vertical
    line; ``styles`` maps a method to matplotlib line keywords; ``bands`` maps a panel title
    to ``{method: (low values, high values)}`` shaded around that line (e.g. a range over
    seeds); ``spans`` maps a panel title to a dose range ``(low, high)`` shaded across the
    panel (e.g. the crossover's range over seeds).
    """
    fig, axes = _panel_grid(len(panels), 6.2, 4.3)
    doses = np.asarray(doses, dtype=float)
    for ax, (name, lines) in zip(axes, panels.items()):
        for method, values in lines.items():
            kw = {"marker": "o", "ms": 4, **((styles or {}).get(method, {}))}
            line, = ax.plot(doses, np.asarray(values, dtype=float), label=method, **kw)
            band = (bands or {}).get(name, {}).get(method)
            if band is not None:
                ax.fill_between(doses, np.asarray(band[0], dtype=float),
                                np.asarray(band[1], dtype=float), color=line.get_color(),
                                alpha=0.18, lw=0)
        span = (spans or {}).get(name)
        if span is not None:
            ax.axvspan(span[0], span[1], color="k", alpha=0.08, lw=0)
        x = (crossovers or {}).get(name)
        if x is not None and np.isfinite(x):
            ax.axvline(x, color="k", lw=1.0, ls="--")
            ax.annotate(f"crossover\n{x:.3g}", (x, 0.04), xycoords=("data", "axes fraction"),
                        fontsize=8, ha="left", xytext=(3, 0), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("photons per pattern")
        ax.set_title(name, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _budget_label(b) -> str:
    return f"{b:g}" if isinstance(b, float) else str(b)


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def budget_figure(budgets, panels, unit: str, title: str):
    """Metrics against a training budget (log2 x axis, a tick per budget).

    ``panels``: ``[(title, lines)]``, ``lines`` a list of ``(label, values, band)`` (``band``
    None or ``(low values, high values)``, shaded) and of ``(label, level)`` (a dashed
    horizontal reference level; left out when not finite)."""
    fig, axes = _panel_grid(len(panels), 5, 3.5)
    colours = ("tab:red", "tab:green", "tab:purple", "tab:brown")
    nan = lambda xs: [math.nan if v is None else v for v in xs]  # noqa: E731
    for ax, (name, lines) in zip(axes, panels):
        levels = 0
        for line in lines:
            if len(line) == 2:
                if _finite(line[1]):
                    ax.axhline(float(line[1]), ls="--", lw=1.2, label=line[0],
                               color=colours[levels % len(colours)])
                    levels += 1
                continue
            label, values, band = line
            ax.plot(budgets, nan(values), "o-", color="tab:blue", label=label)
            if band is not None:
                ax.fill_between(budgets, nan(band[0]), nan(band[1]), color="tab:blue",
                                alpha=0.2, lw=0, label="min..max")
        ax.set_xscale("log", base=2)
        if len(budgets):
            ax.set_xticks(budgets)
            ax.set_xticklabels([_budget_label(b) for b in budgets], fontsize=8)
            ax.minorticks_off()
        ax.set_xlabel(unit)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_learning_curve_figure(path: Path, result: dict, panels) -> Path:
    """A learning curve's ``learning_curve.json`` content as one panel per ``(key, title)``
    of ``panels`` against the budget; every reference level a dashed line labelled by its
    model_id."""
    x = [p["budget"] for p in result["points"]]
    rows = [(title, [(result["model_id"], [p[key] for p in result["points"]], None)]
             + [(ref.get("label", ref["model_id"]), ref.get(key))
                for ref in result["references"]]) for key, title in panels]
    m = result["machine"]
    return _save(budget_figure(x, rows, result["budget_unit"], (
        f"learning curve: {result['model_id']} on test object 0 ({m['device']}, "
        f"{m['torch_threads']} torch thread(s))")), path)


def save_learning_curves_over_seeds(path: Path, seeds, budgets, unit: str, summary: dict,
                                    panels) -> Path:
    """The mean (line) and min..max (band) over ``seeds`` of each ``(key, title)`` of
    ``panels`` (``summary[key]``: ``mean``, ``min``, ``max`` lists over the budgets)."""
    rows = [(title, [("mean", summary[key]["mean"],
                      (summary[key]["min"], summary[key]["max"]))]) for key, title in panels]
    return _save(budget_figure(list(budgets), rows, unit, "learning curve over seeds "
                               f"{', '.join(map(str, seeds))} (test object 0)"), path)


def _save(fig, path: Path) -> Path:
    try:
        return save_figure_atomic(fig, path)
    finally:
        _plt().close(fig)
