"""``live.png``: the view of a scan while it is reconstructed (``ptycho-live``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ptycho.artifacts import save_figure_atomic
from ptycho.plotting.panels import _plt, image_panel


def save_live_figure(path: Path, canvas, covered, *, frames: int, frames_per_s: float,
                     latency_s: float | None, title: str = "",
                     pixel_size_m: float | None = None) -> Path:
    """Amplitude and phase of the stitched canvas so far (pixels no patch reached blank),
    each with a scale bar, under the frames so far, the frame rate and the median latency
    (frame written -> its pixels in the live product)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.4))
    mask = ~np.asarray(covered, bool)
    for ax, img, name, cmap in ((axes[0], np.abs(canvas), "amplitude", "gray"),
                                (axes[1], np.angle(canvas), "phase (rad)", "twilight")):
        image_panel(fig, ax, np.ma.masked_array(img, mask), name, cmap,
                    pixel_size_m=pixel_size_m)
    lat = "n/a" if latency_s is None else f"{latency_s:.2f} s"
    fig.suptitle(f"{title}\n{frames} frames, {frames_per_s:.1f} frames/s, latency {lat}")
    try:
        return save_figure_atomic(fig, Path(path), dpi=80)
    finally:
        plt.close(fig)
