"""Figures a scientist can read: ground truth, reconstruction and error; FRC curves.

matplotlib is imported inside the functions (Agg backend) so ``import ptycho`` stays fast.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ptycho.artifacts import save_figure_atomic


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
        ax.set_xticks([]); ax.set_yticks([])
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


def save_reconstruction_figure(visuals_dir: Path, model_id: str, recon, title: str = "") -> Path:
    """``<model_id>_reconstruction.png``: amplitude and phase of a reconstruction without
    ground truth."""
    import numpy as np
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
        return save_figure_atomic(fig, Path(visuals_dir) / f"{model_id}_reconstruction.png")
    finally:
        plt.close(fig)
