#!/usr/bin/env python
"""ptycho-live: the frame rate it keeps up with, its latency, and its memory over a long scan.

Measured in one run, ptycho-live and ptycho-live-sim each a separate process (as at a
beamline), one torch thread:

* **sustained frame rate** at N = 64 and N = 128: ptycho-live on a scan that is already
  written (``ptycho-live-sim --rate 0``), so it never waits for frames: the frames/s of its
  ``live.json`` (first frame seen to the last product written, snapshots every 256 frames
  and the end-of-scan outputs included);
* **latency** at N = 64: the detector writing at half that rate while ptycho-live follows
  it (snapshots every 0.5 s); the median and 95th percentile, from a frame's write
  (``frame_time_s``) to the moment ``product-live.h5`` holding its pixels is in place;
* **peak memory** (RSS, ``getrusage`` of the ptycho-live process) on a 20 000-frame scan
  against a 2 000-frame one (N = 64, the same spiral step: the canvas grows with the scan's
  area, the frames are not kept).

The model: the project's default generator (hybrid) trained for one epoch on a small
simulated scan at each N (its weights do not change the speed); ``--train-args`` adds study
flags to that training, e.g. ``"--fno-width 8 --precision bf16-mixed --channels-last"`` for
the quick preset's generator in mixed precision (prediction follows the model's precision).
``--parts`` picks what to measure (default all three). ``--smoke``: N = 32, a tiny FNO,
200 / 400 frames (seconds; the test suite runs it).

    python scripts/benchmarks/live.py [--smoke] [--train-args ARGS] [--parts P,..] [--json PATH]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import numpy as np  # noqa: E402
from bench_common import add_common_args, write_json  # noqa: E402

from ptycho.config.live_config import LiveSimConfig  # noqa: E402
from ptycho.datagen.live_detector import frame_source, write_live_scan  # noqa: E402
from ptycho.formats.live_hdf5 import LiveScanWriter  # noqa: E402
from ptycho_torch.cli import study_main  # noqa: E402

TINY = ["--architecture", "fno", "--fno-width", "8", "--fno-modes", "4", "--fno-blocks", "1",
        "--fno-cnn-blocks", "1"]


def _env(threads: int) -> dict:
    return dict(os.environ, PYTHONPATH=str(_REPO), OMP_NUM_THREADS=str(threads))


def _run(args: list[str], env: dict) -> tuple[int, float]:
    """Run a command; ``(exit code, peak RSS in MiB)`` of that process."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr.read().decode()[-2000:])
    return proc.returncode, usage.ru_maxrss / 1024.0


def _live(ckpt: Path, source: Path, out: Path, args, threads: int, device: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from ptycho_torch.cli import live_main; "
            "sys.exit(live_main(sys.argv[1:]))", "--checkpoint", str(ckpt), "--source",
            str(source), "--output-dir", str(out), "--num-threads", str(threads), "--device",
            device, "--quiet-seconds", "20", "--poll-seconds", "0.05", *args]


def train(work: Path, N: int, smoke: bool, threads: int, extra: list[str]) -> Path:
    """A model at N: one epoch on a 64-frame simulated scan (in this process)."""
    cfg = LiveSimConfig(output=str(work / f"train{N}.h5"), N=N, frames=64, rate=0)
    src = frame_source(cfg)
    npz = work / f"train{N}.npz"
    np.savez(npz, diffraction=src.chunk(0, src.n), xcoords=src.positions[:, 0],
             ycoords=src.positions[:, 1], probeGuess=src.probe[0])
    out = work / f"study{N}"
    args = ["--train-npz", str(npz), "--output-dir", str(out), "--N", str(N), "--epochs", "1",
            "--num-threads", str(threads), "--no-progress-bar", "--batch-size", "16",
            *(TINY if smoke else []), *extra]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert study_main(args) == 0, "training the benchmark model failed"
    return next(out.glob("runs/*/model.ckpt"))


def _write(path: Path, N: int, frames: int) -> None:
    write_live_scan(LiveSimConfig(output=str(path), N=N, frames=frames, rate=0, chunk=64),
                    out=io.StringIO())


def throughput(work, ckpt, N, frames, threads, device) -> dict:
    env = _env(threads)
    src = work / f"scan{N}_{frames}.h5"
    _write(src, N, frames)
    out = work / f"live{N}_{frames}"
    code, rss = _run(_live(ckpt, src, out, ["--every-frames", "256", "--every-seconds", "0"],
                           threads, device), env)
    assert code == 0
    st = json.loads((out / "live.json").read_text())
    return {"N": N, "frames": st["frames"], "frames_per_s": st["frames_per_s"],
            "peak_rss_mib": rss, "canvas_shape": st["canvas_shape"],
            "canvas_mib": st["canvas_bytes"] / 2 ** 20}


def latency(work, ckpt, N, frames, rate, threads, device, settle: float = 2.0) -> dict:
    """The writer (this process, paced at ``rate``) starts once ptycho-live has started and
    loaded its model, so no frame waits for its start-up."""
    env = _env(threads)
    src, out = work / f"stream{N}.h5", work / f"stream{N}"
    frames_src = frame_source(LiveSimConfig(output=str(src), N=N, frames=frames))
    writer = LiveScanWriter(src, "ptychopinn", frames_src.probe, None, "counts", chunk=8)
    live = subprocess.Popen(_live(ckpt, src, out, ["--every-frames", "0", "--every-seconds",
                                                   "0.5"], threads, device),
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ready = threading.Event()

    def drain():
        for line in live.stderr:
            if line.startswith("torch CPU threads"):
                ready.set()
    threading.Thread(target=drain, daemon=True).start()
    ready.wait(120)
    time.sleep(settle)                    # the model loads after that line
    t0 = time.perf_counter()
    for lo in range(0, frames, 8):
        hi = min(lo + 8, frames)
        time.sleep(max(0.0, t0 + hi / rate - time.perf_counter()))
        writer.append(frames_src.chunk(lo, hi), frames_src.positions[lo:hi])
    writer.close()
    assert live.wait() == 0
    st = json.loads((out / "live.json").read_text())
    return {"N": N, "frames": st["frames"], "writer_rate": rate, **st["latency_s"],
            "frames_per_s": st["frames_per_s"]}


PARTS = ("throughput", "latency", "memory")


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--smoke", action="store_true", help="N = 32, tiny model, few frames")
    p.add_argument("--train-args", default="", metavar="ARGS",
                   help="study flags added to the benchmark model's training, one string")
    p.add_argument("--parts", default=",".join(PARTS),
                   help=f"comma-separated, of {', '.join(PARTS)} (default all)")
    add_common_args(p)
    a = p.parse_args(argv)
    a.parts = [x for x in a.parts.split(",") if x]
    bad = sorted(set(a.parts) - set(PARTS))
    if bad or not a.parts:
        p.error(f"--parts {bad or a.parts}: allowed {', '.join(PARTS)}")
    return a


def _report(res) -> None:
    for t in res.get("throughput", []):
        print(f"N = {t['N']}: {t['frames_per_s']:.1f} frames/s sustained over {t['frames']} frames")
    if "latency" in res:
        lat = res["latency"]
        print(f"latency at N = {lat['N']}, writer at {lat['writer_rate']} frames/s: median "
              f"{lat['median']:.3f} s, p95 {lat['p95']:.3f} s (frame written -> its pixels in "
              "product-live.h5)")
    if "memory" in res:
        m = res["memory"]
        print(f"peak RSS: {m['short']['frames']} frames {m['short']['peak_rss_mib']:.0f} MiB, "
              f"{m['long']['frames']} frames {m['long']['peak_rss_mib']:.0f} MiB (ratio "
              f"{m['rss_ratio_long_over_short']:.2f}; canvas {m['short']['canvas_mib']:.1f} -> "
              f"{m['long']['canvas_mib']:.1f} MiB)")
    print(f"load average at start: {res['load_average'][0]:.2f} (shared CPU)")


def main(argv=None) -> int:
    a = _parse(argv)
    sizes = (32,) if a.smoke else (64, 128)
    short, long_ = (200, 400) if a.smoke else (2000, 20000)
    res = {"machine": platform.platform(), "load_average": os.getloadavg(),
           "threads": a.threads, "device": a.device, "train_args": a.train_args,
           "parts": a.parts}
    extra = shlex.split(a.train_args)
    with TemporaryDirectory() as tmp:
        work = Path(tmp)
        N0 = sizes[0]
        need = sizes if "throughput" in a.parts else (N0,)
        models = {N: train(work, N, a.smoke, a.threads, extra) for N in need}
        first = None
        if "throughput" in a.parts or "latency" in a.parts:
            first = throughput(work, models[N0], N0, short, a.threads, a.device)
        if "throughput" in a.parts:
            res["throughput"] = [first] + [throughput(work, models[N], N, short // 2, a.threads,
                                                      a.device) for N in sizes[1:]]
        if "latency" in a.parts:
            rate = round(0.5 * first["frames_per_s"], 1)
            res["latency"] = latency(work, models[N0], N0, 100 if a.smoke else 1000, rate,
                                     a.threads, a.device, 1.0 if a.smoke else 3.0)
        if "memory" in a.parts:
            m = {"short": first or throughput(work, models[N0], N0, short, a.threads, a.device),
                 "long": throughput(work, models[N0], N0, long_, a.threads, a.device)}
            m["rss_ratio_long_over_short"] = m["long"]["peak_rss_mib"] / m["short"]["peak_rss_mib"]
            res["memory"] = m
    _report(res)
    if a.json:
        write_json(a.json, res)
    return 0

if __name__ == "__main__":
    sys.exit(main())
