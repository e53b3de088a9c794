#!/usr/bin/env python
"""The live view at three moments of a scan (docs/figures/live_three_moments.png).

    python scripts/docs/live_figure.py --checkpoint RUN/model.ckpt \\
        --scan outputs/live_figure/scan_ptychopinn.npz \\
        --output docs/figures/live_three_moments.png

What ``ptycho-live`` shows, made by its own code: ``ptycho-live-sim``'s writer
(:func:`ptycho.datagen.live_detector.write_live_scan`) writes every frame of ``--scan`` into
a live HDF5 file (``--work-dir``/scan.h5, as fast as the disk allows), and the run object of
``ptycho-live`` (:class:`ptycho_torch.pipeline.live.LiveRun`, its configs built from
``ptycho-live``'s flags by :func:`ptycho_torch.cli.parse_live`) takes the frames in the
order they were written. When the first k frames of a moment (``--moments``, fractions of
the frames) are stitched, it writes ``ptycho-live``'s snapshot (``product-live.h5``,
``live.png``, ``live.json`` in ``--work-dir``/live) and the figure's column shows that
``product-live.h5``'s object, amplitude over phase, the pixels no patch reached blank, each
placed on the last moment's canvas so that the growth of the scan shows. The frames are
those ``ptycho-live`` has after k frames whenever they arrive; only the timing (frames/s,
latency) is not that of a detector. One line per moment is printed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ptycho.artifacts import save_figure_atomic  # noqa: E402
from ptycho.config.live_config import LiveSimConfig  # noqa: E402
from ptycho.datagen.live_detector import write_live_scan  # noqa: E402
from ptycho.formats.ptychodus_product import read_product  # noqa: E402
from ptycho.plotting.panels import _plt, image_panel, row_label  # noqa: E402
from ptycho_torch.cli import parse_live  # noqa: E402
from ptycho_torch.pipeline.live import LiveRun, check_live_inputs  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a trained model.ckpt")
    p.add_argument("--scan", required=True, help="the frames: any scan file the readers know")
    p.add_argument("--output", default="docs/figures/live_three_moments.png")
    p.add_argument("--work-dir", default="outputs/live_figure/work",
                   help="receives scan.h5 and ptycho-live's outputs (live/)")
    p.add_argument("--moments", default="0.1,0.4,1.0",
                   help="fractions of the frames, comma-separated, increasing, in (0, 1]")
    p.add_argument("--num-threads", type=int, default=0, help="torch CPU threads (0: auto)")
    p.add_argument("--dpi", type=int, default=72)
    args = p.parse_args(argv)
    try:
        args.fractions = [float(v) for v in args.moments.split(",")]
    except ValueError:
        p.error(f"--moments {args.moments!r}: not comma-separated numbers")
    fr = args.fractions
    if not fr or any(not 0 < f <= 1 for f in fr) or any(a >= b for a, b in zip(fr, fr[1:])):
        p.error(f"--moments {args.moments!r}: allowed: increasing fractions in (0, 1]")
    return args


def follow(checkpoint: str, source: Path, out: Path, counts, num_threads: int) -> list[dict]:
    """ptycho-live's run on ``source``, its snapshot after each of ``counts`` frames."""
    cfg, inference = parse_live(["--checkpoint", str(checkpoint), "--source", str(source),
                                 "--output-dir", str(out), "--num-threads", str(num_threads),
                                 "--overwrite"], "ptycho-live")
    run = LiveRun(cfg, inference, check_live_inputs(cfg))
    moments = []
    try:
        run.t_first = time.monotonic()
        for k in counts:
            while run.reader.cursor < k:
                batch = run.reader.poll(k - run.reader.cursor)
                if not len(batch[0]):
                    raise SystemExit(f"error: '{source}' holds {run.reader.cursor} frames "
                                     f"with a position, fewer than {k}")
                run.take(*batch)
            run.snapshot()
            _, covered, corner = run.canvas.image()
            obj = np.squeeze(read_product(out / "product-live.h5")["object"])
            moments.append({"frames": run.status.frames, "object": obj, "covered": covered,
                            "corner": corner})
    finally:
        run.reader.close()
    return moments


def _on_last_canvas(m: dict, last: dict) -> tuple[np.ndarray, np.ndarray]:
    """A moment's object and coverage placed on the last moment's canvas."""
    obj = np.zeros(last["object"].shape, np.complex64)
    cov = np.zeros(obj.shape, bool)
    r, c = (m["corner"][i] - last["corner"][i] for i in range(2))
    h, w = m["object"].shape
    obj[r:r + h, c:c + w], cov[r:r + h, c:c + w] = m["object"], m["covered"]
    return obj, cov


def save_figure(moments: list[dict], n_total: int, path: Path, title: str, dpi: int) -> Path:
    """Amplitude (top) and phase (bottom) of each moment, one column each."""
    plt = _plt()
    last = moments[-1]
    amp_last = np.abs(last["object"][last["covered"]])
    lo, hi = (float(v) for v in np.percentile(amp_last, [1, 99]))
    fig, axes = plt.subplots(2, len(moments), figsize=(3.3 * len(moments), 6.4),
                             squeeze=False)
    for j, m in enumerate(moments):
        obj, cov = _on_last_canvas(m, last)
        head = f"{m['frames']} of {n_total} frames ({100.0 * m['frames'] / n_total:.0f} %)"
        image_panel(fig, axes[0, j], np.ma.masked_array(np.abs(obj), ~cov), head, "gray", lo,
                    hi)
        image_panel(fig, axes[1, j], np.ma.masked_array(np.angle(obj), ~cov), "", "twilight",
                    -np.pi, np.pi)
    row_label(axes[0, 0], "amplitude")
    row_label(axes[1, 0], "phase (rad)")
    fig.suptitle(title, fontsize=10)
    try:
        return save_figure_atomic(fig, path, dpi=dpi)
    finally:
        plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    work = Path(args.work_dir)
    source = work / "scan.h5"
    with open(os.devnull, "w") as null:
        n = write_live_scan(LiveSimConfig(output=str(source), scan=args.scan, rate=0), out=null)
    counts = [max(1, round(f * n)) for f in args.fractions]
    moments = follow(args.checkpoint, source, work / "live", counts, args.num_threads)
    for i, m in enumerate(moments, 1):
        print(f"moment {i}: {m['frames']} frames stitched, canvas {m['object'].shape[0]} x "
              f"{m['object'].shape[1]} px")
    title = (f"ptycho-live's view (product-live.h5) while {Path(args.scan).name} is measured "
             f"({n} frames)")
    out = save_figure(moments, n, Path(args.output), title, args.dpi)
    print(f"written: {out} ({out.stat().st_size / 1024:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
