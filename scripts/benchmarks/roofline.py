"""A training step against the machine's own peak: GFLOP per step, GFLOP/s, the matmul peaks.

For the quick preset's generator (Hybrid, width 8) and the reference width (32), N = 64,
batch 16, on the CPU with ``--threads`` torch threads, one run measures:

- patterns/s of a whole training step (forward through the forward model, the preset's
  loss, backward, Adam), best of ``--rounds`` x ``--steps``;
- GFLOP counted per step by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and
  convolutions; FFTs and element-wise work are not counted, so the GFLOP/s is a lower
  bound of the work done);
- the same core's fp32 and bf16 matmul peaks (a 1024^2 matmul, best of 5);
- the top 10 operators by self CPU time (``torch.profiler``) of one step.

    python scripts/benchmarks/roofline.py --threads 1 --steps 10 --rounds 2

Prints each figure and the ratio GFLOP/s / fp32 peak.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from ptycho.config.config import DataConfig  # noqa: E402
from ptycho.config.presets import from_preset  # noqa: E402
from ptycho_torch.model import build_model  # noqa: E402


def matmul_peak(dtype: torch.dtype, n: int = 1024, reps: int = 5) -> float:
    """GFLOP/s of an n x n matmul in ``dtype``, best of ``reps``."""
    a, b = torch.rand(n, n).to(dtype), torch.rand(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def _step_fn(width: int):
    cfg = from_preset("quick")
    model_cfg = replace(cfg.model, fno_width=width)
    torch.manual_seed(0)
    m = build_model(model_cfg, DataConfig(), cfg.training)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    B, N = cfg.training.batch_size, model_cfg.N
    x, pos, sc = torch.rand(B, 1, N, N), torch.zeros(B, 1, 1, 2), torch.ones(B, 1, 1, 1)

    def step():
        loss = m.loss_fn(m(x, pos, None, sc), x, mask=m.valid_mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step, B, model_cfg.architecture


def measure(width: int, steps: int, rounds: int) -> dict:
    step, B, arch = _step_fn(width)
    for _ in range(3):
        step()
    with FlopCounterMode(display=False) as counter:
        step()
    gflop = counter.get_total_flops() / 1e9
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - t) / steps)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10)
    return {"arch": arch, "width": width, "patterns_per_s": B / best, "ms_per_step": best * 1e3,
            "gflop_per_step": gflop, "gflop_per_s": gflop / best, "profile": table}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--widths", default="8,32")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    fp32, bf16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    print(f"threads {a.threads}; matmul peak fp32 {fp32:.1f} GFLOP/s, bf16 {bf16:.1f} GFLOP/s")
    for w in (int(v) for v in a.widths.split(",")):
        r = measure(w, a.steps, a.rounds)
        print(f"\n{r['arch']} width {w}: {r['patterns_per_s']:.1f} patterns/s, "
              f"{r['ms_per_step']:.1f} ms/step, {r['gflop_per_step']:.2f} GFLOP/step counted, "
              f"{r['gflop_per_s']:.1f} GFLOP/s = {r['gflop_per_s'] / fp32:.1%} of the fp32 "
              "matmul peak")
        print(r["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
