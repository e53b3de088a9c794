"""Figures a scientist can read: ground truth, reconstruction and error; FRC curves.

matplotlib is imported inside the functions (Agg backend) so ``import ptycho`` stays fast.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ptycho.artifacts import atomic_path, save_figure_atomic


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def comparison_panels(gt_amp, gt_phase, rows: dict, title: str = ""):
    """Figure: one row per method (plus ground truth): amplitude, amp error, phase, phase error.

    ``rows`` maps a label to ``(amp, phase)`` aligned images (same shape as the truth).
    """
    plt = _plt()
    n = len(rows) + 1
    fig, axes = plt.subplots(n, 4, figsize=(13, 3.1 * n), squeeze=False)
    a_lo, a_hi = np.percentile(gt_amp, [0.5, 99.5])
    p_lo, p_hi = np.percentile(gt_phase, [0.5, 99.5])
    def show(ax, img, t, cmap, lo=None, hi=None):
        im = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
        ax.set_title(t, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    show(axes[0, 0], gt_amp, "ground truth amplitude", "gray", a_lo, a_hi)
    axes[0, 1].axis("off")
    show(axes[0, 2], gt_phase, "ground truth phase (rad, plane removed)", "twilight", p_lo, p_hi)
    axes[0, 3].axis("off")
    for i, (label, (amp, phase)) in enumerate(rows.items(), start=1):
        ea = amp - gt_amp
        ep = phase - gt_phase
        show(axes[i, 0], amp, f"{label}: amplitude (scaled)", "gray", a_lo, a_hi)
        m = float(np.percentile(np.abs(ea), 99)) or 1.0
        show(axes[i, 1], ea, f"{label}: amplitude error", "RdBu_r", -m, m)
        show(axes[i, 2], phase, f"{label}: phase (rad)", "twilight", p_lo, p_hi)
        m = float(np.percentile(np.abs(ep), 99)) or 1.0
        show(axes[i, 3], ep, f"{label}: phase error (rad)", "RdBu_r", -m, m)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def frc_figure(curves: dict, title: str = "Fourier ring correlation"):
    """``curves`` maps a label to ``(freqs, frc_amplitude, frc_phase)``."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, (f, fa, fp) in curves.items():
        axes[0].plot(f, fa, label=label)
        axes[1].plot(f, fp, label=label)
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


def save_study_figures(visuals_dir: Path, model_id: str, gt_amp, gt_phase, amp, phase,
                       frc: dict, title: str = "") -> list[Path]:
    """Write ``<model_id>_reconstruction.png`` and ``<model_id>_frc.png``; return paths."""
    plt = _plt()
    visuals_dir = Path(visuals_dir)
    fig = comparison_panels(gt_amp, gt_phase, {model_id: (amp, phase)}, title)
    p1 = save_figure_atomic(fig, visuals_dir / f"{model_id}_reconstruction.png")
    plt.close(fig)
    fig = frc_figure({model_id: (frc["freqs"], frc["amplitude"], frc["phase"])})
    p2 = save_figure_atomic(fig, visuals_dir / f"{model_id}_frc.png")
    plt.close(fig)
    return [p1, p2]


def save_reconstruction_figure(path: Path, recon, title: str = "") -> Path:
    """A PNG of the amplitude and phase of a reconstruction (no ground truth needed)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, img, name, cmap in ((axes[0], np.abs(recon), "amplitude", "gray"),
                                (axes[1], np.angle(recon), "phase (rad)", "twilight")):
        im = ax.imshow(img, cmap=cmap)
        ax.set_title(name)
        ax.set_xticks([]), ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title)
    try:
        return save_figure_atomic(fig, Path(path))
    finally:
        plt.close(fig)


def save_stacked_figures(path, figures, dpi: int = 90) -> Path:
    """One PNG of several figures stacked top to bottom (narrower ones padded white on the
    right); each figure is closed. Written atomically."""
    import io

    import matplotlib.image as mpimg

    plt = _plt()
    images = []
    for fig in figures:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
        plt.close(fig)
        buf.seek(0)
        images.append(mpimg.imread(buf, format="png")[..., :3])
    width = max(im.shape[1] for im in images)
    canvas = np.concatenate([np.pad(im, ((0, 0), (0, width - im.shape[1]), (0, 0)),
                                    constant_values=1.0) for im in images], axis=0)
    path = Path(path)
    with atomic_path(path, ".png") as tmp:
        plt.imsave(tmp, canvas)
    return path


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
    plt = _plt()
    n = len(panels)
    cols = 2 if n > 1 else 1
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.3 * rows), squeeze=False)
    doses = np.asarray(doses, dtype=float)
    for ax, (name, lines) in zip(axes.flat, panels.items()):
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
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def image_grid_figure(images: dict, row_labels, col_labels, cmap: str = "twilight",
                      vmin=None, vmax=None, title: str = "", cell: float = 2.2):
    """A grid of images: ``images[(row, col)]`` (2-D array; missing cells stay blank),
    rows and columns labelled, one shared colour scale."""
    plt = _plt()
    nr, nc = len(row_labels), len(col_labels)
    fig, axes = plt.subplots(nr, nc, figsize=(cell * nc + 1.2, cell * nr + 0.6), squeeze=False,
                             layout="constrained")
    im = None
    for i, r in enumerate(row_labels):
        for j, c in enumerate(col_labels):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            img = images.get((r, c))
            if img is not None:
                im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
            else:
                ax.set_facecolor("0.9")
            if i == 0:
                ax.set_title(str(c), fontsize=9)
            if j == 0:
                ax.set_ylabel(str(r), fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=axes, fraction=0.02, pad=0.01)
    if title:
        fig.suptitle(title)
    return fig


def save_live_figure(path: Path, canvas, covered, *, frames: int, frames_per_s: float,
                     latency_s: float | None, title: str = "") -> Path:
    """``live.png`` of a scan being reconstructed: amplitude and phase of the stitched
    canvas so far (pixels no patch reached blank), with the frames so far, the frame rate
    and the median latency (frame written -> its pixels in the live product)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.4))
    mask = ~np.asarray(covered, bool)
    for ax, img, name, cmap in ((axes[0], np.abs(canvas), "amplitude", "gray"),
                                (axes[1], np.angle(canvas), "phase (rad)", "twilight")):
        im = ax.imshow(np.ma.masked_array(img, mask), cmap=cmap)
        ax.set_title(name)
        ax.set_xticks([]), ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046)
    lat = "n/a" if latency_s is None else f"{latency_s:.2f} s"
    fig.suptitle(f"{title}\n{frames} frames, {frames_per_s:.1f} frames/s, latency {lat}")
    try:
        return save_figure_atomic(fig, Path(path), dpi=80)
    finally:
        plt.close(fig)
