#!/usr/bin/env python
"""Stitching speed: 5 000 complex patches of 64 x 64 on CPU (target <= 0.5 s).

Measures, median of ``--repeats`` after one warm-up call:

* ``stitch_by_positions`` with whole patches (the general shift-and-average path: every
  pixel of every patch lands on the canvas) -- the target applies to this one;
* ``stitch_by_positions`` with ``crop = stride`` (central tiles only, the reference recipe
  on an arbitrary scan);
* ``stitch_grid_tiles`` on a 71 x 71 grid (5 041 patches; the gridsize-1 study path);
* a plain Python loop over patches that adds each one to the canvas (the reference's
  way), as a baseline measured in the same run.

Prints seconds, patches/s and the ratios (time / 0.5 s budget, loop / vectorized).
numpy only; single-threaded by nature. ``--smoke`` runs 500 patches of 32 x 32 (CI).

Usage::

    python scripts/benchmarks/stitching.py [--smoke] [--n 5000] [--N 64] [--json PATH]
"""
from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import numpy as np  # noqa: E402
from bench_common import write_json  # noqa: E402

from ptycho.stitching import stitch_by_positions, stitch_grid_tiles  # noqa: E402

BUDGET_S = 0.5


def make_patches(n: int, N: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, N, N), np.complex64)
    out.real = rng.standard_normal((n, N, N), dtype=np.float32)
    out.imag = rng.standard_normal((n, N, N), dtype=np.float32)
    return out


def grid_centres(n: int, N: int, stride: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(n, 2) (x, y) centres on a row-major raster with ``stride``, and the canvas shape."""
    side = math.isqrt(n - 1) + 1
    k = np.arange(n)
    x = (k % side) * stride + N // 2
    y = (k // side) * stride + N // 2
    shape = (int(y.max()) + N - N // 2, int(x.max()) + N - N // 2)
    return np.stack([x, y], axis=1).astype(np.float32), shape


def loop_stitch(patches: np.ndarray, centres: np.ndarray, shape) -> np.ndarray:
    """Baseline: one Python iteration per patch (sum and coverage), then divide."""
    N = patches.shape[-1]
    acc = np.zeros(shape, np.complex128)
    cov = np.zeros(shape, np.int64)
    xy = np.floor(centres + 0.5).astype(np.int64)
    for p, (x, y) in zip(patches, xy):
        r0, c0 = y - N // 2, x - N // 2
        acc[r0:r0 + N, c0:c0 + N] += p
        cov[r0:r0 + N, c0:c0 + N] += 1
    out = np.zeros(shape, np.complex64)
    m = cov > 0
    out[m] = acc[m] / cov[m]
    return out


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up (page faults, caches)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def run(n: int, N: int, stride: int, repeats: int) -> dict:
    patches = make_patches(n, N)
    centres, shape = grid_centres(n, N, stride)
    side = math.isqrt(n - 1) + 1
    grid_patches = make_patches(side * side, N, seed=1)
    cases = {
        "stitch_by_positions (whole patches)":
            lambda: stitch_by_positions(patches, centres, shape),
        f"stitch_by_positions (crop={stride})":
            lambda: stitch_by_positions(patches, centres, shape, crop=stride),
        f"stitch_grid_tiles ({side}x{side} = {side * side} patches)":
            lambda: stitch_grid_tiles(grid_patches, side, stride),
        "python loop over patches (baseline)":
            lambda: loop_stitch(patches, centres, shape),
    }
    # the vectorized whole-patch path must equal the loop (same average of overlaps)
    diff = float(np.abs(stitch_by_positions(patches, centres, shape)[0]
                        - loop_stitch(patches, centres, shape)).max())
    rows = []
    for name, fn in cases.items():
        t = _median_time(fn, repeats)
        count = side * side if name.startswith("stitch_grid_tiles") else n
        rows.append({"case": name, "seconds": t, "patches_per_s": count / t})
    main_t = rows[0]["seconds"]
    return {"n": n, "N": N, "stride": stride, "canvas": list(shape), "repeats": repeats,
            "rows": rows, "budget_s": BUDGET_S, "budget_ratio": main_t / BUDGET_S,
            "loop_over_vectorized": rows[3]["seconds"] / main_t, "max_abs_diff_vs_loop": diff}


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="500 patches of 32 x 32 (CI)")
    p.add_argument("--n", type=int, default=5000, help="patches (default 5000)")
    p.add_argument("--N", type=int, default=64, help="patch side (default 64)")
    p.add_argument("--stride", type=int, default=10, help="scan step in pixels (default 10)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = _parse(argv)
    n, N, stride, repeats = (500, 32, 8, 2) if a.smoke else (a.n, a.N, a.stride, a.repeats)
    for name, v, lo in (("--n", n, 2), ("--N", N, 2), ("--repeats", repeats, 1)):
        if v < lo:
            print(f"error: {name}={v} is out of range (allowed: >= {lo})", file=sys.stderr)
            return 2
    if not 1 <= stride <= N:
        print(f"error: --stride={stride} is out of range (allowed: 1..N={N})", file=sys.stderr)
        return 2
    r = run(n, N, stride, repeats)
    r["meta"] = {"numpy": np.__version__, "python": platform.python_version(), "smoke": a.smoke}
    print(f"stitching benchmark: {n} complex64 patches of {N}x{N}, stride {stride}, "
          f"canvas {r['canvas'][0]}x{r['canvas'][1]}, median of {repeats}")
    print("| case | seconds | patches/s |\n|---|---|---|")
    for row in r["rows"]:
        print(f"| {row['case']} | {row['seconds']:.4f} | {row['patches_per_s']:.0f} |")
    verdict = "PASS" if r["rows"][0]["seconds"] <= BUDGET_S else "over budget"
    print(f"whole-patch stitch / {BUDGET_S} s budget = {r['budget_ratio']:.3f} "
          f"(target <= 1): {verdict}; loop / vectorized = {r['loop_over_vectorized']:.2f}; "
          f"max |vectorized - loop| = {r['max_abs_diff_vs_loop']:.3g}")
    if a.json:
        write_json(a.json, r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
