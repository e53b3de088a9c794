#!/usr/bin/env python
"""Batched inference: overhead of ``run_torch_inference`` and accelerator memory vs test-set size.

Two measurements, each a ratio taken in one run:

1. Throughput of ``ptycho_torch.engine.inference.run_torch_inference`` divided by that of a raw
   loop that calls ``forward_predict`` on the same model at the same batch size (each
   batch moved to the device and its output back to CPU, outputs concatenated), timed
   alternately, median of ``--repeats``. Target: >= 0.95.
2. CUDA only: peak accelerator memory of ``run_torch_inference`` (above the model's own
   memory) for ``n`` and for ``10 n`` test patterns at a fixed ``infer_batch_size``.
   Target: the 10x set within 10% of the 1x peak (memory bounded by one batch). Without
   CUDA it prints "CUDA not available: skipped".

Usage::

    python scripts/benchmarks/inference.py [--smoke] [--device cpu|cuda|auto] \\
        [--architecture fno] [--N 64] [--n 512] [--batch 128] [--json PATH]

On CPU one torch thread is used (``--threads`` to change). ``--smoke`` runs tiny sizes
so CI finishes in seconds.
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

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_common import add_common_args, add_generator_args, select_device, sync, write_json  # noqa: E402

from ptycho.config.choices import ARCHITECTURES  # noqa: E402
from ptycho_torch.engine.malloc import keep_freed_memory  # noqa: E402

THROUGHPUT_TARGET = 0.95
MEMORY_TARGET = 1.10


def _inference_config(infer_batch_size: int):
    """The inference settings of the study (only the batch size matters here)."""
    from ptycho.config.config import InferenceConfig
    return InferenceConfig(infer_batch_size=infer_batch_size)


def build_model(architecture: str, N: int, width: int, modes: int, blocks: int, seed: int = 0):
    """An untrained PtychoPINN_Lightning in eval mode (speed and memory do not depend on weights)."""
    from ptycho.config.config import DataConfig, ModelConfig, TrainingConfig
    from ptycho.probes import make_probe
    from ptycho_torch.model import PtychoPINN_Lightning
    torch.manual_seed(seed)
    model = PtychoPINN_Lightning(
        ModelConfig(N=N, architecture=architecture, fno_width=width, fno_modes=modes,
                    fno_blocks=blocks, fno_cnn_blocks=1),
        DataConfig(input_scale=1.0), TrainingConfig())
    model.set_probe(make_probe(N))
    return model.eval()


def make_test_data(n: int, N: int, seed: int = 0) -> dict:
    """Random test mapping in the loader's layout (channel-first, gridsize 1)."""
    from ptycho.probes import make_probe
    rng = np.random.default_rng(seed)
    return {"diffraction": rng.random((n, 1, N, N), dtype=np.float32),
            "coords_nominal": np.zeros((n, 1, 1, 2), np.float32),
            "probeGuess": make_probe(N)}



def raw_loop(model, data: dict, batch: int, device: torch.device) -> torch.Tensor:
    """The baseline: forward_predict per batch, output back to CPU, concatenated."""
    from ptycho_torch.engine.inference import prediction_inputs
    x, pos, probe, scale = prediction_inputs(model, data)
    probe = probe.to(device)
    outs = []
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch):
            out = model.forward_predict(x[i:i + batch].to(device), pos[i:i + batch].to(device),
                                        probe, scale[i:i + batch].to(device))
            outs.append(out.to("cpu"))
    return torch.cat(outs)


def bench_throughput(model, data: dict, batch: int, device: torch.device, repeats: int) -> dict:
    from ptycho_torch.engine.inference import run_torch_inference
    n = data["diffraction"].shape[0]
    wrapped = lambda: run_torch_inference(model, data, _inference_config(batch))  # noqa: E731
    raw = lambda: raw_loop(model, data, batch, device)  # noqa: E731
    # identical results first (the wrapper must not change what is computed)
    a, b = wrapped(), raw().numpy()
    max_diff = float(np.abs(a - b).max())
    t_w, t_r = [], []
    for _ in range(repeats):  # alternate, so drifts (thermal, other processes) hit both
        for fn, ts in ((wrapped, t_w), (raw, t_r)):
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            ts.append(time.perf_counter() - t0)
    tw, tr = statistics.median(t_w), statistics.median(t_r)
    return {"n": n, "batch": batch, "wrapper_s": tw, "raw_s": tr,
            "wrapper_patterns_per_s": n / tw, "raw_patterns_per_s": n / tr,
            "throughput_ratio": tr / tw, "target": THROUGHPUT_TARGET,
            "max_abs_diff_vs_raw": max_diff}


def bench_memory(model, N: int, n: int, batch: int, device: torch.device) -> dict:
    """Peak CUDA memory above the model for n and 10 n patterns (fixed batch)."""
    from ptycho_torch.engine.inference import run_torch_inference
    peaks = {}
    for k in (n, 10 * n):
        data = make_test_data(k, N, seed=k)
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run_torch_inference(model, data, _inference_config(batch))
        torch.cuda.synchronize(device)
        peaks[k] = torch.cuda.max_memory_allocated(device) - base
        del data
    one_batch_io = batch * N * N * (4 + 8)  # float32 input + complex64 output
    return {"n_small": n, "n_large": 10 * n, "batch": batch,
            "peak_small_mib": peaks[n] / 2**20, "peak_large_mib": peaks[10 * n] / 2**20,
            "memory_ratio": peaks[10 * n] / max(peaks[n], 1), "target": MEMORY_TARGET,
            "one_batch_io_mib": one_batch_io / 2**20,
            "full_set_io_mib_if_held": 10 * n * N * N * (4 + 8) / 2**20}


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "below target"


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    p.add_argument("--architecture", choices=ARCHITECTURES, default="fno")
    p.add_argument("--N", type=int, default=64)
    p.add_argument("--n", type=int, default=512, help="test patterns for the throughput ratio")
    p.add_argument("--n-memory", type=int, default=1089,
                   help="test patterns of the 1x memory measurement (10x is the second)")
    p.add_argument("--batch", type=int, default=128, help="infer_batch_size (both paths)")
    add_generator_args(p)
    p.add_argument("--repeats", type=int, default=5)
    add_common_args(p, device_default="auto")
    return p.parse_args(argv)


def main(argv=None) -> int:
    malloc = keep_freed_memory()  # as every entry point does (ptycho_torch.engine.malloc)
    a = _parse(argv)
    device = select_device(a.device)
    if device is None:
        return 2
    if a.smoke:
        N, n, n_mem, batch, width, modes, blocks, repeats = 32, 48, 40, 16, 8, 4, 1, 2
    else:
        N, n, n_mem, batch, width, modes, blocks, repeats = (a.N, a.n, a.n_memory, a.batch, a.width,
                                                            a.modes, a.blocks, a.repeats)
    for name, v in (("--n", n), ("--n-memory", n_mem), ("--batch", batch), ("--repeats", repeats),
                    ("--threads", a.threads)):
        if v < 1:
            print(f"error: {name}={v} is out of range (allowed: >= 1)", file=sys.stderr)
            return 2
    if device.type == "cpu":
        torch.set_num_threads(a.threads)
    try:
        model = build_model(a.architecture, N, width, modes, blocks).to(device)
    except ValueError as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    thr = bench_throughput(model, make_test_data(n, N), batch, device, repeats)
    meta = {"device": str(device), "architecture": a.architecture, "N": N, "width": width,
            "modes": modes, "blocks": blocks,
            "threads": torch.get_num_threads() if device.type == "cpu" else None,
            "torch": torch.__version__, "python": platform.python_version(), "smoke": a.smoke,
            "malloc": malloc}
    print(f"inference benchmark: {a.architecture} N={N} width={width} device={device} "
          f"threads={meta['threads']} repeats={repeats}")
    print("| path | patterns/s | seconds |\n|---|---|---|")
    print(f"| run_torch_inference | {thr['wrapper_patterns_per_s']:.1f} | {thr['wrapper_s']:.3f} |")
    print(f"| raw forward_predict loop | {thr['raw_patterns_per_s']:.1f} | {thr['raw_s']:.3f} |")
    print(f"throughput ratio (wrapper / raw) = {thr['throughput_ratio']:.3f} "
          f"(target >= {THROUGHPUT_TARGET}): {_verdict(thr['throughput_ratio'] >= THROUGHPUT_TARGET)}; "
          f"max |difference| = {thr['max_abs_diff_vs_raw']:.3g}")
    result = {"meta": meta, "throughput": thr}
    if device.type == "cuda":
        mem = bench_memory(model, N, n_mem, batch, device)
        result["memory"] = mem
        print(f"peak CUDA memory above the model at infer_batch_size={batch}: "
              f"{mem['peak_small_mib']:.1f} MiB for {mem['n_small']} patterns, "
              f"{mem['peak_large_mib']:.1f} MiB for {mem['n_large']} "
              f"(one batch of inputs+outputs: {mem['one_batch_io_mib']:.1f} MiB; all {mem['n_large']} "
              f"would be {mem['full_set_io_mib_if_held']:.0f} MiB)")
        print(f"memory ratio (10x / 1x) = {mem['memory_ratio']:.3f} (target <= {MEMORY_TARGET}): "
              f"{_verdict(mem['memory_ratio'] <= MEMORY_TARGET)}")
    else:
        result["memory"] = {"skipped": "CUDA not available"}
        print("peak accelerator memory vs test-set size: CUDA not available: skipped")
    if a.json:
        write_json(a.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
