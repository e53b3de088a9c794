"""A training step against the machine's own peak: GFLOP per step, GFLOP/s, the matmul peaks.

For the quick preset's generator (Hybrid, width 8) and the reference width (32), N = 64,
batch 16, on the CPU with ``--threads`` torch threads, in each ``--variants`` precision
(``32``, and ``bf16-mixed+cl``: ``bf16-mixed`` with channels-last), one run measures:

- patterns/s of a whole training step (forward under the precision's autocast through the
  forward model, the preset's loss, backward, Adam: ``precision.training_step``), best of
  ``--rounds`` x ``--steps``;
- GFLOP counted per step by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and
  convolutions; FFTs and element-wise work are not counted, so the GFLOP/s is a lower
  bound of the work done; with channels-last the spectral layers run as DFT matrix
  products, which it counts, so that variant counts more GFLOP for the same model);
- the same core's fp32 and bf16 matmul peaks (a 1024^2 matmul, best of 5), each variant's
  GFLOP/s as a share of its own precision's peak;
- the top 10 operators by self CPU time (``torch.profiler``) of one step.

    python scripts/benchmarks/roofline.py --threads 1 --steps 10 --rounds 2 [--json PATH]

``--smoke`` runs one width-4 step of each variant against a 128^2 matmul (CI).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import torch  # noqa: E402
from bench_common import add_common_args, write_json  # noqa: E402
from precision import training_step  # noqa: E402  (scripts/benchmarks/precision.py)
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from ptycho_torch.core.precision import bf16_supported  # noqa: E402
from ptycho_torch.engine.malloc import keep_freed_memory  # noqa: E402

# --variants: name -> (TrainingConfig.precision, channels_last), and the matmul peak
# (PEAK_DTYPES) each is measured against
VARIANTS = {"32": ("32", False), "bf16-mixed+cl": ("bf16-mixed", True)}
PEAK_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
VARIANT_PEAK = {"32": "fp32", "bf16-mixed+cl": "bf16"}


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


def measure(width: int, variant: str, steps: int, rounds: int, B: int = 16) -> dict:
    step = training_step(width, *VARIANTS[variant], batch=B)
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
    return {"variant": variant, "width": width, "patterns_per_s": B / best,
            "ms_per_step": best * 1e3, "gflop_per_step": gflop, "gflop_per_s": gflop / best,
            "profile": table}


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    add_common_args(p, device_default=None)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--widths", default="8,32")
    p.add_argument("--variants", default="32,bf16-mixed+cl",
                   help=f"comma-separated, of: {', '.join(VARIANTS)}")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    a = p.parse_args(argv)
    a.variants = a.variants.split(",")
    bad = [v for v in a.variants if v not in VARIANTS]
    if bad:
        p.error(f"--variants {bad}: allowed {', '.join(VARIANTS)}")
    return a


def main(argv=None) -> int:
    a = _parse(argv)
    torch.set_num_threads(a.threads)
    keep_freed_memory()  # as every entry point does (ptycho_torch.engine.malloc)
    n, widths, steps, rounds = (128, [4], 1, 1) if a.smoke else (
        1024, [int(v) for v in a.widths.split(",")], a.steps, a.rounds)
    peak = {name: matmul_peak(dtype, n) for name, dtype in PEAK_DTYPES.items()}
    print(f"threads {a.threads}; {n}^2 matmul peak fp32 {peak['fp32']:.1f} GFLOP/s, "
          f"bf16 {peak['bf16']:.1f} GFLOP/s")
    if "bf16-mixed+cl" in a.variants and not bf16_supported("cpu"):
        print("note: this CPU has no native bfloat16 arithmetic; the bf16 rows are emulated")
    out = {"threads": a.threads, "smoke": a.smoke, "matmul_peak_gflop_per_s": peak,
           "steps": []}
    for w in widths:
        for v in a.variants:
            r = measure(w, v, steps, rounds)
            r["share_of_peak"] = r["gflop_per_s"] / peak[VARIANT_PEAK[v]]
            print(f"\nhybrid width {w}, {v}: {r['patterns_per_s']:.1f} patterns/s, "
                  f"{r['ms_per_step']:.1f} ms/step, {r['gflop_per_step']:.2f} GFLOP/step "
                  f"counted, {r['gflop_per_s']:.1f} GFLOP/s = {r['share_of_peak']:.1%} of the "
                  f"{VARIANT_PEAK[v]} matmul peak")
            print(r["profile"])
            out["steps"].append(r)
    if a.json:
        write_json(a.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
