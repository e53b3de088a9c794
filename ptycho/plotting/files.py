"""Figures written to files: a study's reconstruction and FRC figures, and several figures
stacked into one PNG."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ptycho.artifacts import atomic_path, save_figure_atomic
from ptycho.plotting.curves import frc_figure
from ptycho.plotting.images import comparison_panels
from ptycho.plotting.panels import _plt


def save_study_figures(visuals_dir: Path, model_id: str, gt_amp, gt_phase, amp, phase,
                       frc: dict, title: str = "", *, label: str | None = None,
                       pixel_size_m: float | None = None) -> list[Path]:
    """Write ``<model_id>_reconstruction.png`` and ``<model_id>_frc.png`` (the method's row
    and line named after ``label``, default ``model_id``); return paths."""
    plt = _plt()
    visuals_dir = Path(visuals_dir)
    label = label or model_id
    fig = comparison_panels(gt_amp, gt_phase, {label: (amp, phase)}, title,
                            pixel_size_m=pixel_size_m)
    p1 = save_figure_atomic(fig, visuals_dir / f"{model_id}_reconstruction.png")
    plt.close(fig)
    fig = frc_figure({label: (frc["freqs"], frc["amplitude"], frc["phase"])})
    p2 = save_figure_atomic(fig, visuals_dir / f"{model_id}_frc.png")
    plt.close(fig)
    return [p1, p2]


def save_stacked_figures(path, figures, dpi: int = 90) -> Path:
    """One PNG of several figures stacked top to bottom (narrower ones padded white on the
    right); each figure is closed. Written atomically."""
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
