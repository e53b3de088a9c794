#!/usr/bin/env python
"""Training throughput: the Lightning training_step path vs a bare generator loop, per architecture.

For each architecture (same hyperparameters in both paths):

* **Lightning**: ``lightning.Trainer.fit`` of ``PtychoPINN_Lightning`` on the project's
  ``DataLoader`` (``ptycho_torch.engine.data.make_loaders``): loader -> generator -> object x
  probe -> |FFT| -> normalized MAE -> backward -> Adam step, exactly the study's
  ``training_step`` path (no validation, logger or checkpoints). Timed by a callback from
  the first batch after ``--warmup`` batches to the last.
* **bare**: the generator alone on one fixed on-device batch: forward, a dummy loss
  ``mean |G(x)|``, backward, Adam step.

Both paths are measured ``--rounds`` times, alternating, and the best of each is kept
(other load on the machine can only slow a run down). Prints patterns/s of both and their
ratio (Lightning / bare: the cost of the data pipeline, the physics and the loss and of
Lightning itself). On CPU one torch thread
(``--threads``). ``--smoke`` runs tiny sizes (CI).

Usage::

    python scripts/benchmarks/training.py [--smoke] [--device cpu|cuda|auto] \\
        [--arch fno --arch hybrid] [--N 64] [--batch 16] [--iters 20] [--json PATH]
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
from bench_common import (  # noqa: E402
    add_common_args,
    add_generator_args,
    quiet_lightning,
    select_device,
    sync,
    write_json,
)

from ptycho.config.choices import ARCHITECTURES as ARCHS  # noqa: E402
from ptycho_torch.engine.malloc import keep_freed_memory  # noqa: E402



def make_configs(arch: str, N: int, batch: int, width: int, modes: int, blocks: int, device: str):
    """(ModelConfig, TrainingConfig, DataConfig) of the study, for both paths."""
    from ptycho.config.config import DataConfig, ModelConfig, TrainingConfig
    return (ModelConfig(N=N, architecture=arch, fno_width=width, fno_modes=modes,
                        fno_blocks=blocks),
            TrainingConfig(batch_size=batch, scheduler="none", device=device, val_fraction=0.05),
            DataConfig(input_scale=1.0))


def random_dataset(n: int, channels: int, N: int):
    """A random training scan of ``n`` groups (only shapes and sizes matter for speed)."""
    from ptycho.probes import make_probe
    from ptycho.dataset import PtychoDataset
    rng = np.random.default_rng(0)
    zeros = np.zeros((n, channels, 1, 2), np.float32)
    return PtychoDataset(path="<random>", diffraction=rng.random((n, channels, N, N), dtype=np.float32),
                         coords_nominal=zeros, coords_offsets=zeros.copy(), probe=make_probe(N),
                         object_index=np.zeros(n, np.int64))


def lightning_throughput(configs, n_batches: int, warmup: int, device: torch.device) -> float:
    """Patterns/s of Trainer.fit over ``n_batches`` after ``warmup`` batches."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    from ptycho_torch.engine.data import make_loaders, split_indices
    from ptycho_torch.model import PtychoPINN_Lightning

    mc, tc, dc = configs
    N, B = mc.N, tc.batch_size
    n = (warmup + n_batches) * B
    train = random_dataset(n + 2, mc.channels, N)
    split = split_indices(n + 2, 2 / (n + 2), tc.seed)
    loader, _ = make_loaders(train, split, 1.0, B, tc.seed)
    torch.manual_seed(0)
    model = PtychoPINN_Lightning(mc, dc, tc)
    model.set_probe(train.probe)

    class Timer(Callback):
        t0 = t1 = None

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if batch_idx == warmup:
                sync(device)
                self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if batch_idx == warmup + n_batches - 1:
                sync(device)
                self.t1 = time.perf_counter()

    timer = Timer()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=warmup + n_batches, limit_val_batches=0,
                        accelerator=device.type, devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, callbacks=[timer], precision=tc.precision,
                        deterministic="warn" if tc.deterministic else None)
    trainer.fit(model, loader)
    return n_batches * B * mc.channels / (timer.t1 - timer.t0)


def bare_throughput(configs, n_batches: int, warmup: int, device: torch.device) -> tuple[float, int]:
    """Patterns/s of generator forward + backward + Adam step on one fixed batch; params."""
    from ptycho_torch.generators import build_generator, count_parameters
    mc, tc, _ = configs
    torch.manual_seed(0)
    gen = build_generator(mc).to(device).train()
    opt = torch.optim.Adam(gen.parameters(), lr=tc.learning_rate)
    x = torch.rand(tc.batch_size, mc.channels, mc.N, mc.N, device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = gen(x).abs().mean()
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    sync(device)
    times = []
    for _ in range(n_batches):
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
    # the Lightning path is timed over all batches; use the mean for a like-for-like ratio
    return tc.batch_size * mc.channels / statistics.fmean(times), count_parameters(gen)


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    p.add_argument("--arch", choices=ARCHS, action="append", help="architecture(s) (default: all)")
    p.add_argument("--N", type=int, default=64)
    p.add_argument("--batch", type=int, default=16, help="training batch size (default 16)")
    add_generator_args(p)
    p.add_argument("--iters", type=int, default=20, help="timed batches (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="warm-up batches (default 3)")
    p.add_argument("--rounds", type=int, default=2,
                   help="measure both paths this many times, alternating; keep the best (default 2)")
    add_common_args(p, device_default="auto")
    return p.parse_args(argv)


def main(argv=None) -> int:
    malloc = keep_freed_memory()  # as every entry point does (ptycho_torch.engine.malloc)
    a = _parse(argv)
    device = select_device(a.device)
    if device is None:
        return 2
    dev = device.type
    if a.smoke:
        N, batch, width, modes, blocks, iters, warmup, rounds = 32, 4, 8, 4, 1, 2, 1, 1
    else:
        N, batch, width, modes, blocks, iters, warmup, rounds = (a.N, a.batch, a.width, a.modes,
                                                                 a.blocks, a.iters, a.warmup, a.rounds)
    for name, v, lo in (("--batch", batch, 1), ("--iters", iters, 1), ("--warmup", warmup, 0),
                        ("--rounds", rounds, 1),
                        ("--threads", a.threads, 1)):
        if v < lo:
            print(f"error: {name}={v} is out of range (allowed: >= {lo})", file=sys.stderr)
            return 2
    if device.type == "cpu":
        torch.set_num_threads(a.threads)
    quiet_lightning()
    archs = a.arch or list(ARCHS)
    rows = []
    for arch in archs:
        try:
            configs = make_configs(arch, N, batch, width, modes, blocks, dev)
        except ValueError as err:
            print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
            return 2
        bare, light = [], []
        for _ in range(rounds):  # alternate the two paths; best of rounds (other load only slows)
            b, params = bare_throughput(configs, iters, warmup, device)
            bare.append(b)
            light.append(lightning_throughput(configs, iters, warmup, device))
        bare, light = max(bare), max(light)
        rows.append({"architecture": arch, "parameters": params, "lightning_patterns_per_s": light,
                     "bare_patterns_per_s": bare, "ratio": light / bare})
    meta = {"device": dev, "N": N, "batch": batch, "width": width, "modes": modes, "blocks": blocks,
            "iters": iters, "warmup": warmup, "rounds": rounds,
            "threads": torch.get_num_threads() if device.type == "cpu" else None,
            "torch": torch.__version__, "python": platform.python_version(), "smoke": a.smoke,
            "malloc": malloc}
    print(f"training benchmark: N={N} batch={batch} fno width/modes/blocks={width}/{modes}/{blocks} "
          f"device={dev} threads={meta['threads']} iters={iters} warmup={warmup} rounds={rounds} (best)")
    print("| architecture | parameters | Lightning patterns/s | bare generator patterns/s | ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['architecture']} | {r['parameters']:,} | {r['lightning_patterns_per_s']:.1f} | "
              f"{r['bare_patterns_per_s']:.1f} | {r['ratio']:.3f} |")
    print("ratio = Lightning training_step path (loader + physics + loss + optimizer) / bare "
          "generator forward+backward+step")
    if a.json:
        write_json(a.json, {"meta": meta, "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
