#!/usr/bin/env python
"""Does the in-process allocator setting (ptycho_torch.engine.malloc) give the speed of the
MALLOC_* variables? CPU training throughput of the study's Lightning path, three ways.

    python scripts/benchmarks/malloc.py [--batch 64] [--rounds 2] [--smoke]

Each measurement is a fresh process running the Lightning ``training_step`` path of
``scripts/benchmarks/training.py`` (Hybrid, N 64, one torch thread):

* ``off``: glibc's defaults (neither the variables nor ``mallopt``);
* ``mallopt``: :func:`ptycho_torch.engine.malloc.keep_freed_memory` at start-up, as every
  entry point does;
* ``env``: ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000`` set before Python
  starts (the README's former command).

The three alternate ``--rounds`` times and the best of each is kept (other load only slows
a run down); the ratios to ``off`` are printed from that one run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ptycho.artifacts import write_json_atomic  # noqa: E402

MODES = ("off", "mallopt", "env")
ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}


def child(mode: str, batch: int, iters: int, smoke: bool) -> None:
    from ptycho_torch.engine.malloc import keep_freed_memory
    applied = keep_freed_memory() if mode == "mallopt" else "not called"
    import torch

    import training as bench
    torch.set_num_threads(1)
    N, width = (32, 8) if smoke else (64, 8)
    configs = bench.make_configs("hybrid", N, batch, width, 12 if not smoke else 4, 4 if not smoke
                                 else 1, "cpu")
    rate = bench.lightning_throughput(configs, iters, 2, torch.device("cpu"))
    print(json.dumps({"mode": mode, "patterns_per_s": rate, "keep_freed_memory": applied}))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    p.add_argument("--json", default=None, help="also write the figures here")
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        child(a.child, a.batch, a.iters, a.smoke)
        return 0
    best = {m: 0.0 for m in MODES}
    base = {k: v for k, v in os.environ.items() if k not in ENV}
    for _ in range(max(1, a.rounds)):
        for mode in MODES:
            env = {**base, **ENV} if mode == "env" else base
            args = [sys.executable, __file__, "--child", "off" if mode == "env" else mode,
                    "--batch", str(a.batch), "--iters", str(a.iters)] + (["--smoke"] if a.smoke else [])
            out = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
            rate = json.loads(out.stdout.strip().splitlines()[-1])["patterns_per_s"]
            best[mode] = max(best[mode], rate)
    print(f"CPU training, Hybrid, batch {a.batch}, one thread, best of {a.rounds} alternating "
          "rounds (patterns/s):")
    for mode in MODES:
        print(f"  {mode:8s} {best[mode]:8.1f}   x{best[mode] / best['off']:.2f} of off")
    if a.json:
        write_json_atomic(Path(a.json), {"batch": a.batch, "rounds": a.rounds, "smoke": a.smoke,
                                         "patterns_per_s": best,
                                         "ratio_to_off": {m: best[m] / best["off"] for m in MODES}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
