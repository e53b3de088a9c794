"""Training and inference speed by precision and memory order, measured in one run.

Variants (``TrainingConfig.precision`` x ``channels_last``): ``32`` (the default),
``32+cl``, ``bf16-mixed`` and ``bf16-mixed+cl``. For each, from the same initial weights:

- **training**: patterns/s of a whole training step of the quick preset's generator at the
  given widths (forward under the precision's autocast, as Lightning's plugin runs it, the
  forward model, the preset's loss, backward, Adam), N = 64, batch 16;
- **Lightning fit**: patterns/s of ``lightning.Trainer.fit`` over the project's loader at
  width 8, the study's whole training path with Lightning's precision plugin
  (``scripts/benchmarks/training.py``);
- **inference**: patterns/s of ``predict_patches`` (``forward_predict`` in batches of 64)
  over 256 patterns at N = 64 and N = 128;
- with ``--compile``: ``torch.compile`` of the width-8 generator against eager, in ``32``
  and ``bf16-mixed+cl`` (the project does not offer it: see the README for why).

The variants are timed in turn, round after round (A, B, C, D, A, B, ...), and each keeps
its best round, so a load that comes and goes hits every variant alike. Ratios are against
``32`` of the same run.

    python scripts/benchmarks/precision.py --threads 1 --rounds 4 [--compile] [--json PATH]

``--smoke`` runs tiny sizes (CI).
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

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_common import add_common_args, cpu_only, quiet_lightning, write_json  # noqa: E402
from training import lightning_throughput  # noqa: E402  (scripts/benchmarks/training.py)

from ptycho.config.config import DataConfig  # noqa: E402
from ptycho.config.presets import from_preset  # noqa: E402
from ptycho_torch.model import build_model  # noqa: E402
from ptycho_torch.engine.inference import predict_patches  # noqa: E402
from ptycho_torch.engine.malloc import keep_freed_memory  # noqa: E402
from ptycho_torch.core.precision import autocast, bf16_supported  # noqa: E402

VARIANTS = (("32", False), ("32", True), ("bf16-mixed", False), ("bf16-mixed", True))


def _name(precision: str, channels_last: bool) -> str:
    return precision + ("+cl" if channels_last else "")


def _model(width: int, N: int, precision: str, channels_last: bool):
    cfg = from_preset("quick")
    torch.manual_seed(0)
    mc = replace(cfg.model, fno_width=width, N=N)
    tc = replace(cfg.training, precision=precision, channels_last=channels_last)
    return build_model(mc, DataConfig(), tc)


def compiled(model):
    """``model`` with its generator under ``torch.compile`` (inductor). neuraloperator's
    SpectralConv forward stays eager: its einsum goes through tensorly / opt_einsum, which
    dynamo cannot trace (a graph break at every spectral layer either way). In channels-last
    order the generator does not call it (``generators/spectral_dft.py``), so dynamo traces
    the spectral layers too; inductor leaves their complex operations to eager kernels.
    Shapes are static (``dynamic=False``): the batch never changes here, and inductor
    (torch 2.13) fails on the symbolic strides of the channels-last views."""
    for m in model.generator.modules():
        if type(m).__name__ == "SpectralConv":
            m.forward = torch.compiler.disable(m.forward)
    model.generator = torch.compile(model.generator, dynamic=False)
    return model


def training_step(width: int, precision: str, channels_last: bool, batch: int = 16,
                  compile_generator: bool = False):
    """A closure running one training step; the batch is fixed random amplitudes."""
    m = _model(width, 64, precision, channels_last)
    if compile_generator:
        m = compiled(m)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 1, 64, 64, generator=g)
    pos, scale = torch.zeros(batch, 1, 1, 2), torch.ones(batch, 1, 1, 1)

    def step():
        with autocast(precision, "cpu"):
            pred = m(x, pos, None, scale)
            loss = m.loss_fn(pred.float(), x, mask=m.valid_mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def lightning_fit(width: int, precision: str, channels_last: bool, steps: int):
    """A closure returning the patterns/s of one ``Trainer.fit`` of ``steps`` batches."""
    cfg = from_preset("quick")
    tc = replace(cfg.training, precision=precision, channels_last=channels_last,
                 scheduler="none", device="cpu")
    configs = (replace(cfg.model, fno_width=width), tc, DataConfig(input_scale=1.0))
    return lambda: lightning_throughput(configs, steps, 3, torch.device("cpu"))


def inference_run(N: int, precision: str, channels_last: bool, n: int = 256):
    """A closure predicting ``n`` patterns of size N in batches of 64."""
    m = _model(8, N, precision, channels_last).eval()
    rng = np.random.default_rng(0)
    data = {"diffraction": rng.random((n, 1, N, N), dtype=np.float32),
            "coords_nominal": np.zeros((n, 1, 1, 2), np.float32), "input_scale_factor": 1.0}
    return lambda: predict_patches(m, data, 64)


def best_times(runs: dict, reps: int, rounds: int) -> dict:
    """Best seconds per call of each closure, timed in turn for ``rounds`` rounds."""
    for fn in runs.values():  # warm-up (oneDNN primitive caches, allocator)
        fn()
        fn()
    best = {k: float("inf") for k in runs}
    for _ in range(rounds):
        for k, fn in runs.items():
            t = time.perf_counter()
            for _ in range(reps):
                fn()
            best[k] = min(best[k], (time.perf_counter() - t) / reps)
    return best


def report(title: str, best: dict, patterns: int) -> dict:
    """Print one table (patterns/s, ms per call, ratio to '32'); returns it as a dict."""
    base = best[VARIANTS[0]]
    print(f"\n{title}")
    rows = {}
    for k, t in best.items():
        rows[_name(*k)] = {"patterns_per_s": patterns / t, "ratio_to_32": base / t}
        print(f"  {_name(*k):<15} {patterns / t:8.1f} patterns/s  {t * 1e3:8.1f} ms  "
              f"x{base / t:.2f}")
    return rows


def compare_compile(steps: int, rounds: int) -> None:
    """Eager against ``torch.compile`` at width 8, in both precisions: the first step's
    time (the compilation) apart, then the best steady-state round."""
    print("\ntorch.compile of the generator, hybrid width 8, N 64, batch 16")
    for v in (VARIANTS[0], VARIANTS[3]):
        eager, comp = training_step(8, *v), training_step(8, *v, compile_generator=True)
        t = time.perf_counter()
        comp()
        first = time.perf_counter() - t
        best = best_times({"eager": eager, "compiled": comp}, steps, rounds)
        print(f"  {_name(*v):<15} eager {best['eager'] * 1e3:7.1f} ms, compiled "
              f"{best['compiled'] * 1e3:7.1f} ms (x{best['eager'] / best['compiled']:.2f}); "
              f"first compiled step {first:.0f} s")


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4, help="rounds of every variant (default 4)")
    p.add_argument("--steps", type=int, default=6, help="training steps per round (default 6)")
    p.add_argument("--widths", default="8,32", help="generator widths (default 8,32)")
    p.add_argument("--compile", action="store_true",
                   help="also time torch.compile of the width-8 generator (compile time apart)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (CI): the script runs")
    add_common_args(p, device_default="cpu")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = _parse(argv)
    if not cpu_only(a.device):
        return 2
    torch.set_num_threads(a.threads)
    keep_freed_memory()  # as every entry point does (ptycho_torch.engine.malloc)
    quiet_lightning()   # one fit per cell
    if not bf16_supported("cpu"):  # autocast still runs, on torch's reference kernels
        print("note: this CPU has no native bfloat16 arithmetic (the study refuses "
              "--precision bf16-mixed here); the bf16 rows below are emulated")
    widths, steps, rounds, sizes, n = ([8], 1, 1, (32,), 16) if a.smoke else (
        [int(v) for v in a.widths.split(",")], a.steps, a.rounds, (64, 128), 256)
    print(f"torch {torch.__version__}, {a.threads} thread(s), "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    out = {"threads": a.threads, "rounds": rounds, "steps": steps, "smoke": a.smoke}
    for w in widths:
        runs = {v: training_step(w, *v) for v in VARIANTS}
        out[f"training_width_{w}"] = report(f"training, hybrid width {w}, N 64, batch 16",
                                            best_times(runs, steps, rounds), 16)
    if a.compile:
        compare_compile(steps, rounds)
    rates = {v: [] for v in VARIANTS}
    for _ in range(rounds):
        for v in VARIANTS:
            rates[v].append(lightning_fit(8, *v, 4 * steps)())
    out["lightning_fit_width_8"] = report(
        f"Lightning fit, hybrid width 8, N 64, batch 16, {4 * steps} steps",
        {v: 16 / max(r) for v, r in rates.items()}, 16)
    for N in sizes:
        runs = {v: inference_run(N, *v, n=n) for v in VARIANTS}
        out[f"inference_N_{N}"] = report(
            f"inference, hybrid width 8, N {N}, {n} patterns in batches of 64",
            best_times(runs, 1, rounds), n)
    if a.json:
        write_json(a.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
