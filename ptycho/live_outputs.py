"""What ``ptycho-live`` writes while a scan is measured, each file atomically (a reader,
Ptychodus or a person, never sees a half-written one): ``product-live.h5`` (the Ptychodus
product of the stitched canvas so far), ``live.png`` and ``live.json`` (the status:
frames, frames left out and why, frames/s, the latency from a frame written to its pixels
in ``product-live.h5``, how the scan ended). numpy only.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ptycho.artifacts import write_json_atomic
from ptycho.formats.ptychodus_product import write_product
from ptycho.plotting import save_live_figure
from ptycho.stitching.incremental import IncrementalCanvas

__all__ = ["LatencyHistogram", "LiveStatus", "LIVE_FILES", "write_live_outputs",
           "write_scored_product"]

LIVE_FILES = ("product-live.h5", "live.png", "live.json", "product-out.h5")


class LatencyHistogram:
    """Latencies in logarithmic bins of 1 % from 0.1 ms to 1e5 s: quantiles to 1 % in
    fixed memory, however many frames."""

    EDGES = np.geomspace(1e-4, 1e5, 2085)

    def __init__(self):
        self.counts = np.zeros(len(self.EDGES) + 1, np.int64)

    def add(self, seconds) -> None:
        s = np.asarray(seconds, np.float64)
        s = s[np.isfinite(s)]
        np.add.at(self.counts, np.searchsorted(self.EDGES, s), 1)

    def quantile(self, q: float) -> float | None:
        total = int(self.counts.sum())
        if total == 0:
            return None
        i = int(np.searchsorted(np.cumsum(self.counts), q * total))
        lo, hi = self.EDGES[max(i - 1, 0)], self.EDGES[min(i, len(self.EDGES) - 1)]
        return float(np.sqrt(lo * hi))


@dataclass
class LiveStatus:
    """``live.json``."""

    source: str
    scan_id: str
    state: str = "following"          # then "ended"
    frames: int = 0                   # stitched
    left_out: dict = field(default_factory=lambda: {"nan_or_inf": 0, "saturated": 0,
                                                     "no_position": 0})
    frames_per_s: float = 0.0
    latency_s: dict = field(default_factory=dict)
    snapshots: int = 0
    canvas_shape: list = field(default_factory=list)
    canvas_bytes: int = 0
    end: str = ""
    data_residual: dict | None = None
    refined: dict | None = None
    adaptation: dict | None = None    # --adapt: rounds, steps, seconds, loss before / after
    note: str = ""


def write_live_outputs(out: Path, canvas: IncrementalCanvas, probe, status: LiveStatus,
                       latency: LatencyHistogram, product_meta: dict, title: str) -> float:
    """``product-live.h5`` (whole canvas so far, positions relative to its corner), then
    ``live.png`` and ``live.json``; returns the Unix time the product was in place."""
    img, covered, (row0, col0) = canvas.image()
    positions = canvas.centres - np.array([col0, row0], np.float64)
    meta = dict(product_meta, comments=f"{product_meta.get('comments', '')}; live: "
                f"{canvas.n} frames, the whole stitched canvas (0 where no patch reached)")
    write_product(out / "product-live.h5", img, probe, positions, **meta)
    done = time.time()
    status.snapshots += 1
    status.canvas_shape = list(img.shape)
    status.canvas_bytes = int(canvas.nbytes)
    status.latency_s = {"median": latency.quantile(0.5), "p95": latency.quantile(0.95)}
    save_live_figure(out / "live.png", img, covered, frames=status.frames,
                     frames_per_s=status.frames_per_s, latency_s=status.latency_s["median"],
                     title=title)
    write_json_atomic(out / "live.json", asdict(status))
    return done


def write_scored_product(path: Path, recon: np.ndarray, region, canvas: IncrementalCanvas,
                         probe, product_meta: dict) -> Path:
    """The finished scan's product as ``ptycho-reconstruct`` writes it: the object on the
    scored region, positions relative to its corner."""
    positions = canvas.centres - np.array([region[1], region[0]], np.float64)
    return write_product(path, recon, probe, positions, **product_meta)
