"""Training steps on a shared CPU: torch's default threads against ``ptycho_torch.engine.threads``.

Each cell runs, in a fresh process, ``--steps`` training steps of the quick preset's
generator (forward through the forward model, the preset's loss, backward, Adam; batch
16, N = 64) after 3 warm-up steps, and reports ms per step. Cells:

- ``idle`` / ``loaded`` (one other process spinning on a CPU for the whole cell);
- ``torch default`` (one thread per core, as torch sets it) / ``chosen`` (the count
  :func:`ptycho_torch.engine.threads.apply_num_threads` picks at start: the usable CPUs that other
  work leaves free) / ``passive`` (torch's default count with ``OMP_WAIT_POLICY=PASSIVE``:
  OpenMP threads sleep between parallel regions instead of spinning).

    python scripts/benchmarks/threads.py --steps 20 --rounds 2 [--json PATH]

Prints each cell's best of ``--rounds`` and the ratios, measured in one run. ``--smoke``
runs one step per cell, one round (CI).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from bench_common import write_json

_REPO = str(Path(__file__).resolve().parents[2])

CELL = r"""
import sys, time, torch
from ptycho.config.config import DataConfig
from ptycho.config.presets import from_preset
from ptycho_torch.model import build_model
from ptycho_torch.engine.threads import apply_num_threads
from ptycho_torch.engine.malloc import keep_freed_memory
keep_freed_memory()  # as every entry point does
if sys.argv[2] == "chosen":
    apply_num_threads(0)
cfg = from_preset("quick")
torch.manual_seed(0)
m = build_model(cfg.model, DataConfig(), cfg.training)
opt = torch.optim.Adam(m.parameters(), 1e-3)
B, N = cfg.training.batch_size, cfg.model.N
x, pos, sc = torch.rand(B, 1, N, N), torch.zeros(B, 1, 1, 2), torch.ones(B, 1, 1, 1)
def step():
    loss = m.loss_fn(m(x, pos, None, sc), x, mask=m.valid_mask)
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(3):
    step()
n = int(sys.argv[1]); t = time.perf_counter()
for _ in range(n):
    step()
print(torch.get_num_threads(), (time.perf_counter() - t) / n * 1e3)
"""


POLICIES = {"default": "torch default", "chosen": "chosen", "passive": "passive wait"}


def _cell(steps: int, policy: str) -> tuple[int, float]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if policy == "passive":   # read by OpenMP when torch loads it: set before the cell starts
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    # the cell imports the project from this clone, installed or not
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_REPO, env.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, "-c", CELL, str(steps), policy], env=env,
                         check=True, stdout=subprocess.PIPE, text=True).stdout.split()
    return int(out[0]), float(out[1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--smoke", action="store_true", help="one step per cell, one round (CI)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    a = p.parse_args(argv)
    if a.smoke:
        a.steps, a.rounds = 1, 1
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    best: dict = {}
    for load in ("idle", "loaded"):
        burner = None
        if load == "loaded":
            burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1.0)
        try:
            for _ in range(a.rounds):
                for policy in POLICIES:
                    threads, ms = _cell(a.steps, policy)
                    key = (load, policy)
                    if key not in best or ms < best[key][1]:
                        best[key] = (threads, ms)
        finally:
            if burner is not None:
                burner.kill()
                burner.wait()
    for (load, policy), (threads, ms) in best.items():
        name = POLICIES[policy]
        print(f"{load:<7} {name:<14} {threads} thread(s)  {ms:7.1f} ms/step")
    idle = best[("idle", "default")][1]
    for policy in POLICIES:
        ratio = best[("loaded", policy)][1] / idle
        print(f"loaded / idle torch default, {policy}: {ratio:.2f}x")
    for policy in ("chosen", "passive"):
        print(f"{policy} / torch default, idle: {best[('idle', policy)][1] / idle:.2f}x")
    if a.json:
        write_json(a.json, {"steps": a.steps, "rounds": a.rounds, "cells": [
            {"load": load, "policy": policy, "threads": threads, "ms_per_step": ms}
            for (load, policy), (threads, ms) in best.items()]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
