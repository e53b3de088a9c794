"""Image figures: ground truth, reconstructions and their errors, a method-by-dose grid, the
per-epoch snapshots. Every image panel has a scale bar (:mod:`ptycho.plotting.panels`) and
every row says what it shows; no figure leaves an empty panel."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ptycho.artifacts import save_figure_atomic
from ptycho.plotting.panels import _plt, image_panel, method_label, row_label


def comparison_panels(gt_amp, gt_phase, rows: dict, title: str = "", *,
                      pixel_size_m: float | None = None):
    """Figure: a ground-truth row (amplitude, phase), then one row per method: amplitude,
    phase, amplitude error, phase error; rows named by :func:`method_label`.

    ``rows`` maps a method id to ``(amp, phase)`` aligned images (same shape as the truth).
    """
    plt = _plt()
    n = len(rows) + 1
    fig, axes = plt.subplots(n, 4, figsize=(13, 3.1 * n), squeeze=False)
    a_lo, a_hi = np.percentile(gt_amp, [0.5, 99.5])
    p_lo, p_hi = np.percentile(gt_phase, [0.5, 99.5])

    def show(ax, img, t, cmap, lo=None, hi=None):
        image_panel(fig, ax, img, t, cmap, lo, hi, pixel_size_m=pixel_size_m)
    show(axes[0, 0], gt_amp, "amplitude", "gray", a_lo, a_hi)
    show(axes[0, 1], gt_phase, "phase (rad, plane removed)", "twilight", p_lo, p_hi)
    row_label(axes[0, 0], "ground truth")
    fig.delaxes(axes[0, 2])     # the truth has no error panels
    fig.delaxes(axes[0, 3])
    for i, (label, (amp, phase)) in enumerate(rows.items(), start=1):
        ea, ep = amp - gt_amp, phase - gt_phase
        show(axes[i, 0], amp, "amplitude (scaled)", "gray", a_lo, a_hi)
        show(axes[i, 1], phase, "phase (rad)", "twilight", p_lo, p_hi)
        m = float(np.percentile(np.abs(ea), 99)) or 1.0
        show(axes[i, 2], ea, "amplitude error", "RdBu_r", -m, m)
        m = float(np.percentile(np.abs(ep), 99)) or 1.0
        show(axes[i, 3], ep, "phase error (rad)", "RdBu_r", -m, m)
        row_label(axes[i, 0], method_label(label))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def reconstruction_figure(recon, title: str = "", *, label: str = "reconstruction",
                          pixel_size_m: float | None = None):
    """The amplitude and phase of a reconstruction (no ground truth needed), one row named
    ``label``."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    image_panel(fig, axes[0], np.abs(recon), "amplitude", "gray", pixel_size_m=pixel_size_m)
    image_panel(fig, axes[1], np.angle(recon), "phase (rad)", "twilight",
                pixel_size_m=pixel_size_m)
    row_label(axes[0], method_label(label))
    fig.suptitle(title)
    return fig


def save_reconstruction_figure(path: Path, recon, title: str = "", *,
                               label: str = "reconstruction",
                               pixel_size_m: float | None = None) -> Path:
    """A PNG of :func:`reconstruction_figure`, written atomically."""
    plt = _plt()
    fig = reconstruction_figure(recon, title, label=label, pixel_size_m=pixel_size_m)
    try:
        return save_figure_atomic(fig, Path(path))
    finally:
        plt.close(fig)


def image_grid_figure(images: dict, row_labels, col_labels, cmap: str = "twilight",
                      vmin=None, vmax=None, title: str = "", cell: float = 2.2, *,
                      pixel_size_m: float | None = None):
    """A grid of images: ``images[(row, col)]`` (2-D array; a missing cell says "no
    result"), rows named by :func:`method_label`, columns by ``col_labels``, one shared
    colour scale, a scale bar in every image."""
    plt = _plt()
    nr, nc = len(row_labels), len(col_labels)
    fig, axes = plt.subplots(nr, nc, figsize=(cell * nc + 1.2, cell * nr + 0.6), squeeze=False,
                             layout="constrained")
    im = None
    for i, r in enumerate(row_labels):
        for j, c in enumerate(col_labels):
            ax = axes[i, j]
            img = images.get((r, c))
            if img is not None:
                im = image_panel(fig, ax, img, "", cmap, vmin, vmax, pixel_size_m=pixel_size_m,
                                 colorbar=False)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_facecolor("0.9")
                ax.text(0.5, 0.5, "no result", ha="center", va="center", fontsize=8,
                        color="0.35", transform=ax.transAxes)
            if i == 0:
                ax.set_title(str(c), fontsize=9)
            if j == 0:
                ax.set_ylabel(method_label(r), fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=axes, fraction=0.02, pad=0.01)
    if title:
        fig.suptitle(title)
    return fig


def snapshot_figure(obj, truth=None, title: str = "", row_labels=None):
    """Predicted patches during training: one row per patch of ``obj`` (n, N, N) complex
    (amplitude, phase), beside the true patch (``truth``: (amplitudes, phases), each
    (n, N, N)) when there is one; rows named by ``row_labels`` (default ``patch k``)."""
    plt = _plt()
    cols = 4 if truth is not None else 2
    n = obj.shape[0]
    fig, axes = plt.subplots(n, cols, figsize=(1.8 * cols, 1.6 * n), squeeze=False)
    for i in range(n):
        panels = [(np.abs(obj[i]), "amplitude", "gray"), (np.angle(obj[i]), "phase", "twilight")]
        if truth is not None:
            panels += [(truth[0][i], "true |O P|", "gray"), (truth[1][i], "true phase", "twilight")]
        for j, (img, name, cmap) in enumerate(panels):
            image_panel(fig, axes[i, j], img, name if i == 0 else "", cmap, colorbar=False)
            axes[i, j].title.set_fontsize(7)
        axes[i, 0].set_ylabel(row_labels[i] if row_labels is not None else f"patch {i}",
                              fontsize=7)
    fig.suptitle(title, fontsize=8)
    return fig


def save_snapshot_figure(path: Path, obj, truth=None, title: str = "", row_labels=None,
                         dpi: int = 72) -> Path:
    """A PNG of :func:`snapshot_figure`, written atomically."""
    plt = _plt()
    fig = snapshot_figure(obj, truth, title, row_labels)
    try:
        return save_figure_atomic(fig, Path(path), dpi=dpi)
    finally:
        plt.close(fig)
