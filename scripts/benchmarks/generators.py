"""Throughput of the generators (cnn, fno, hybrid) at their default hyperparameters.

For each architecture: parameter count (real scalars, complex counted twice), forward
patches/s (``eval()`` + ``torch.inference_mode``) and forward+backward patches/s
(``train()``, dummy loss ``mean |G(x) - t|`` on the complex output, gradients zeroed
each iteration, no optimizer step). A few warmup iterations, then the median time of the
timed iterations. Prints a markdown table; ``--json PATH`` also saves the results.

Usage::

    python scripts/benchmarks/generators.py [--smoke] [--N 64] [--batch 16] \\
        [--device cpu|cuda|auto] [--json PATH]

Set the two malloc variables in the environment before Python starts (see the README:
without them glibc page faults made the FNO 2-3.5x slower on CPU at large batch). On CPU
the benchmark uses one torch thread (``--threads`` to change), as a busy second core can
make two OpenMP threads slower than one. ``--smoke`` runs tiny sizes and
iteration counts so CI finishes in seconds.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import torch  # noqa: E402
from bench_common import add_common_args, select_device, sync, write_json  # noqa: E402

from ptycho.config.config import ModelConfig  # noqa: E402
from ptycho_torch.generators import GENERATORS, build_generator, count_parameters  # noqa: E402
from ptycho_torch.engine.malloc import keep_freed_memory  # noqa: E402



def _median_seconds(step, iters: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    sync(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_architecture(arch: str, N: int, batch: int, device: torch.device, iters: int,
                       warmup: int, seed: int = 0) -> dict:
    """Measure one architecture; returns a dict of the numbers (see the module docstring)."""
    torch.manual_seed(seed)
    cfg = ModelConfig(N=N, architecture=arch)
    model = build_generator(cfg).to(device)
    x = torch.rand(batch, cfg.channels, N, N, device=device)
    target = torch.polar(torch.full_like(x, 0.8), torch.full_like(x, 0.3))

    model.eval()

    def fwd():
        with torch.inference_mode():
            model(x)

    t_fwd = _median_seconds(fwd, iters, warmup, device)

    model.train()

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        loss = (model(x) - target).abs().mean()
        loss.backward()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t_train = _median_seconds(fwd_bwd, iters, warmup, device)
    result = {
        "architecture": arch,
        "parameters": count_parameters(model),
        "forward_patches_per_s": batch * cfg.channels / t_fwd,
        "train_patches_per_s": batch * cfg.channels / t_train,
        "forward_ms_per_batch": 1e3 * t_fwd,
        "train_ms_per_batch": 1e3 * t_train,
    }
    if device.type == "cuda":
        result["train_peak_mem_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def markdown_table(results: list[dict]) -> str:
    cuda = any("train_peak_mem_mib" in r for r in results)
    head = ["architecture", "parameters", "forward patches/s", "fwd+bwd patches/s",
            "forward ms/batch", "fwd+bwd ms/batch"] + (["peak MiB (train)"] if cuda else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        row = [r["architecture"], f"{r['parameters']:,}", f"{r['forward_patches_per_s']:.1f}",
               f"{r['train_patches_per_s']:.1f}", f"{r['forward_ms_per_batch']:.1f}",
               f"{r['train_ms_per_batch']:.1f}"]
        if cuda:
            row.append(f"{r.get('train_peak_mem_mib', float('nan')):.0f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _parse(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes and iterations (CI)")
    p.add_argument("--N", type=int, default=64, help="patch size (default 64)")
    p.add_argument("--batch", type=int, default=16, help="patches per batch (default 16)")
    p.add_argument("--iters", type=int, default=10, help="timed iterations (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="warmup iterations (default 3)")
    p.add_argument("--arch", choices=tuple(GENERATORS), action="append",
                   help="architecture(s) to run (default: all)")
    add_common_args(p, device_default="cpu")
    return p.parse_args(argv)


def main(argv=None) -> int:
    malloc = keep_freed_memory()  # as every entry point does (ptycho_torch.engine.malloc)
    args = _parse(argv)
    device = select_device(args.device)
    if device is None:
        return 2
    if args.smoke:
        N, batch, iters, warmup = 32, 2, 2, 1
    else:
        N, batch, iters, warmup = args.N, args.batch, args.iters, args.warmup
    for name, value, lo in (("--batch", batch, 1), ("--iters", iters, 1),
                            ("--warmup", warmup, 0), ("--threads", args.threads, 1)):
        if value < lo:
            print(f"error: {name}={value} is out of range (allowed: >= {lo})", file=sys.stderr)
            return 2
    try:
        ModelConfig(N=N)
    except ValueError as exc:
        print(f"error: --N: {exc}", file=sys.stderr)
        return 2
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    archs = args.arch or list(GENERATORS)
    results = [bench_architecture(a, N, batch, device, iters, warmup) for a in archs]
    meta = {"N": N, "batch": batch, "iters": iters, "warmup": warmup, "device": str(device),
            "threads": torch.get_num_threads() if device.type == "cpu" else None,
            "torch": torch.__version__, "python": platform.python_version(),
            "malloc": malloc, "smoke": args.smoke}
    print(f"generators benchmark: N={N} batch={batch} device={device} "
          f"threads={meta['threads']} iters={iters} warmup={warmup}"
          + ("" if malloc != "unavailable" or device.type != "cpu" else
             "  (note: glibc's allocator setting is unavailable here)"))
    print(markdown_table(results))
    if args.json:
        write_json(args.json, {"meta": meta, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
