"""The generators' small channels-last layers against the plain torch calls, in one run.

Each pair computes the same function (``tests/ptycho_torch/generators/
test_layers_channels_last.py``) on the quick preset's level-0 activations (width 8,
N = 64):

- **GELU**: ``F.gelu`` on a channels-last tensor against ``channels_last.gelu`` (the same GELU on
  its contiguous ``(B, H, W, C)`` view), float32 and bfloat16, forward alone and forward +
  backward, batch 16;
- **lift**: the 1 x 1 convolution from one channel (``nn.Conv2d`` under the precision's
  autocast, as the generator ran it before) against ``channels_last.lift`` (a float32 product on
  the channels-last view), forward + backward at batch 16 (training) and forward without
  gradients at batch 64 (inference).

Pairs are timed in turn, round after round, and each keeps its best round; the ratio is
plain time over channels-last-form time.

``--whole`` also times what the forms buy in the whole model, in ``bf16-mixed`` +
channels-last and ``32`` + channels-last, inside this one process: the same model with
the plain GELU, the convolution lift and the out-of-place spectral-block sums at
inference (the generator modules' names rebound for the call) against the channels-last
forms and the in-place inference, alternating: the width-8 training step and
``predict_patches`` at N = 64 (``precision.py``'s closures), and ``--fit`` a Lightning fit
of 60 steps. One process, because this machine's speed can wander by a third from one
process to the next.

    python scripts/benchmarks/channels_last_ops.py --threads 2 --rounds 5 [--whole [--fit]]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from bench_common import add_common_args, cpu_only, quiet_lightning, write_json  # noqa: E402
from precision import best_times, inference_run, lightning_fit, training_step  # noqa: E402
from torch import nn  # noqa: E402

from ptycho_torch.core.precision import autocast, float32_island  # noqa: E402
from ptycho_torch.engine.malloc import keep_freed_memory  # noqa: E402
from ptycho_torch.generators import fno, hybrid, layers  # noqa: E402
from ptycho_torch.generators.channels_last import gelu, lift  # noqa: E402
from ptycho_torch.generators.spectral_dft import spectral_conv_dft  # noqa: E402

CL = torch.channels_last


def gelu_pair(batch: int, n: int, dtype: torch.dtype, backward: bool) -> dict:
    x = torch.randn(batch, 8, n, n).to(dtype).contiguous(memory_format=CL)
    x.requires_grad_(backward)
    g = torch.randn_like(x)

    def run(fn):
        def call():
            y = fn(x)
            if backward:
                y.backward(g)
        return call
    return {"plain": run(F.gelu), "channels-last form": run(gelu)}


def lift_pair(batch: int, n: int, precision: str, backward: bool) -> dict:
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 8, 1).to(memory_format=CL)
    x = torch.rand(batch, 1, n, n)

    def run(channels_last: bool):
        def call():
            with torch.set_grad_enabled(backward), autocast(precision, "cpu"):
                y = lift(conv, x, channels_last)
            if backward:
                y.float().backward(torch.ones(y.shape))
        return call
    return {"plain": run(False), "channels-last form": run(True)}


def _plain_lift(conv, x, channels_last):
    return conv(x)


def _out_of_place(block, x):
    """A channels-last spectral block without autograd, as autograd's path computes it."""
    with float32_island(x.device.type):
        spectral = spectral_conv_dft(block.spectral, x.float())
    return x + F.gelu(spectral + block.local(x))


PLAIN = {"gelu": F.gelu, "lift": _plain_lift, "_forward_in_place": _out_of_place}


def with_plain_layers(fn, only: str | None = None):
    """``fn`` run with the generators' GELU and lift rebound to the plain calls, and the
    spectral blocks' in-place inference to the out-of-place sums (``only``: that one)."""
    names = [(layers, "gelu"), (hybrid, "gelu"), (hybrid, "lift"), (fno, "lift"),
             (layers.SpectralBlock, "_forward_in_place")]
    names = [(m, n) for m, n in names if only in (None, n)]

    def call():
        saved = [getattr(m, n) for m, n in names]
        for m, n in names:
            setattr(m, n, PLAIN[n])
        try:
            return fn()
        finally:
            for (m, n), v in zip(names, saved):
                setattr(m, n, v)
    return call


def whole_model(n: int, reps: int, rounds: int, fit_steps: int) -> dict:
    """Patterns/s of the plain and the channels-last layers in the whole model."""
    out = {}
    for precision in ("bf16-mixed", "32"):
        cases = {f"training step, {precision} + channels-last, width 8":
                 (lambda p=precision: training_step(8, p, True), 16, reps),
                 f"inference N {n}, {precision} + channels-last":
                 (lambda p=precision: inference_run(n, p, True, n=256), 256, 1)}
        if fit_steps:
            cases[f"Lightning fit {fit_steps} steps, {precision} + channels-last, width 8"] = (
                lambda p=precision: lightning_fit(8, p, True, fit_steps), None, 1)
        cases[f"inference N {n}, {precision} + channels-last, in-place sums alone"] = (
            cases[f"inference N {n}, {precision} + channels-last"][0], 256, 1)
        for title, (make, patterns, k) in cases.items():
            new = make()
            only = "_forward_in_place" if title.endswith("alone") else None
            pair = {"plain": with_plain_layers(new, only), "channels-last form": new}
            if patterns is None:   # a fit closure returns its own patterns/s
                rates = {key: max(fn() for _ in range(rounds)) for key, fn in pair.items()}
            else:
                rates = {key: patterns / t for key, t in best_times(pair, k, rounds).items()}
            out[title] = rates
    return out


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="rounds of every pair (default 5)")
    p.add_argument("--reps", type=int, default=50, help="calls per round (default 50)")
    p.add_argument("--whole", action="store_true",
                   help="also time the plain and channels-last layers in the whole model")
    p.add_argument("--fit", action="store_true", help="with --whole: also a Lightning fit")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (CI): the script runs")
    add_common_args(p, device_default="cpu")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = _parse(argv)
    if not cpu_only(a.device):
        return 2
    torch.set_num_threads(a.threads)
    n, reps, rounds = (16, 2, 1) if a.smoke else (64, a.reps, a.rounds)
    cases = {}
    for dtype in (torch.float32, torch.bfloat16):
        name = str(dtype).replace("torch.", "")
        cases[f"gelu {name}, forward, batch 16"] = gelu_pair(16, n, dtype, False)
        cases[f"gelu {name}, forward + backward, batch 16"] = gelu_pair(16, n, dtype, True)
    for precision in ("32", "bf16-mixed"):
        cases[f"lift {precision}, forward + backward, batch 16"] = lift_pair(16, n, precision, True)
        cases[f"lift {precision}, forward, no grad, batch 64"] = lift_pair(64, n, precision, False)
    print(f"torch {torch.__version__}, {a.threads} thread(s), N {n}, width 8")
    print(f"{'case':<44} {'plain ms':>9} {'CL form ms':>10} {'ratio':>7}")
    out = {"threads": a.threads, "rounds": rounds, "reps": reps, "smoke": a.smoke, "cases": {}}
    for title, pair in cases.items():
        best = best_times(pair, reps, rounds)
        plain, form = best["plain"], best["channels-last form"]
        print(f"{title:<44} {plain * 1e3:9.3f} {form * 1e3:10.3f} {plain / form:7.2f}")
        out["cases"][title] = {"plain_ms": plain * 1e3, "form_ms": form * 1e3,
                               "ratio": plain / form}
    if a.whole:
        keep_freed_memory()  # as every entry point does (ptycho_torch.engine.malloc)
        quiet_lightning()
        fit_steps = (2 if a.smoke else 60) if a.fit else 0
        print(f"\n{'whole model':<58} {'plain':>9} {'CL forms':>9} {'ratio':>6}  patterns/s")
        out["whole"] = {}
        for title, rates in whole_model(32 if a.smoke else 64, 2 if a.smoke else 10,
                                        rounds, fit_steps).items():
            plain, form = rates["plain"], rates["channels-last form"]
            print(f"{title:<58} {plain:9.1f} {form:9.1f} {form / plain:6.2f}")
            out["whole"][title] = {**rates, "ratio": form / plain}
    if a.json:
        write_json(a.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
