#!/usr/bin/env python
"""Live, then LSQML: ``ptycho-live --refine lsqml`` at the end of a scan against LSQML from a
flat start, seed by seed, on a scan with known truth (ptycho_torch.studies.handover).

    python scripts/studies/make_example_scan.py --from data/run1084_recon3_postPC.npz \\
        --nphotons 1e4 --layouts dataset,npz --output-dir outputs/run1084_1e4
    python scripts/studies/live_handover.py --dataset outputs/run1084_1e4/dataset.npz \\
        --scan outputs/run1084_1e4/scan_ptychopinn.npz --seeds 1,7,42 \\
        --output-dir outputs/live_handover

For each seed: a model trained on ``--dataset`` (``ptycho-study --seed S`` with
``--train-args``, default the quick preset) unless ``--checkpoints`` gives one per seed (or
one for every seed); the scan replayed by ``ptycho-live-sim --rate 0``; ``ptycho-live
--refine lsqml --refine-epochs R`` on it (the end of the scan timed inside ``ptycho-live``:
``live.json`` ``refined.seconds``); LSQML from a flat start for ``--flat-epochs`` epochs
(timed as every study's iterative row: task build and epochs, after one untimed warm-up
epoch); both scored against the truth. Each step runs in this process, one after the other.
A seed whose ``seed_<S>/seed.json`` holds the same settings is read back, so seeds can
be run one at a time (``--seeds 1``, then ``--seeds 7``, ...) and then tabled together.
Prints one table and writes ``handover.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from ptycho.artifacts import write_json_atomic  # noqa: E402
from ptycho.config.live_config import LiveSimConfig  # noqa: E402
from ptycho.datagen.live_detector import write_live_scan  # noqa: E402
from ptycho.io import load_dataset  # noqa: E402
from ptycho_torch.cli import live_main, study_main  # noqa: E402
from ptycho_torch.engine.threads import apply_num_threads  # noqa: E402
from ptycho_torch.studies import handover as h  # noqa: E402



def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="dataset.npz with the ground truth "
                   "(make_example_scan.py --from ... --layouts dataset)")
    p.add_argument("--scan", default="", help="the scan file the simulated detector replays "
                   "(default: --dataset); its frames and positions must be the dataset's")
    p.add_argument("--seeds", default="1,7,42", help="comma-separated training and LSQML seeds")
    p.add_argument("--checkpoints", default="", help="comma-separated model.ckpt, one per seed "
                   "or one for all (default: train one per seed)")
    p.add_argument("--train-args", default="--preset quick --N 64",
                   help="ptycho-study flags of the training (with --train-npz --dataset, "
                        "--seed S and --output-dir added)")
    p.add_argument("--refine-epochs", type=int, default=20)
    p.add_argument("--flat-epochs", type=int, default=100)
    p.add_argument("--flat-every", type=int, default=10, help="score the flat run every this "
                   "many epochs too (its best phase corr and when; 0: only at the end)")
    p.add_argument("--num-threads", type=int, default=0,
                   help="torch CPU threads of ptycho-live and the flat LSQML (0: torch's)")
    p.add_argument("--output-dir", default="outputs/live_handover")
    return p.parse_args(argv)


def check(a: argparse.Namespace) -> tuple[list[int], list[str]]:
    """The seeds and the per-seed checkpoints (empty: train); ValueError names the flag."""
    try:
        seeds = [int(s) for s in a.seeds.split(",")]
    except ValueError:
        raise ValueError(f"--seeds {a.seeds!r} is invalid (allowed: comma-separated integers "
                         ">= 0)") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {a.seeds!r} is invalid (allowed: distinct integers >= 0)")
    for flag, v in (("--refine-epochs", a.refine_epochs), ("--flat-epochs", a.flat_epochs)):
        if not 1 <= v <= 100000:
            raise ValueError(f"{flag} {v} is out of range (allowed: 1..100000)")
    if not 0 <= a.flat_every <= a.flat_epochs:
        raise ValueError(f"--flat-every {a.flat_every} is out of range (allowed: 0..--flat-epochs)")
    if a.num_threads < 0:
        raise ValueError(f"--num-threads {a.num_threads} is out of range (allowed: >= 0)")
    for flag, path in (("--dataset", a.dataset), ("--scan", a.scan or a.dataset)):
        if not Path(path).is_file():
            raise ValueError(f"{flag} '{path}' is not a file (allowed: a scan file)")
    ckpts = [c for c in a.checkpoints.split(",") if c]
    if ckpts and len(ckpts) not in (1, len(seeds)):
        raise ValueError(f"--checkpoints names {len(ckpts)} files for {len(seeds)} seeds "
                         "(allowed: one per seed, or one for all)")
    for c in ckpts:
        if not Path(c).is_file():
            raise ValueError(f"--checkpoints '{c}' is not a file (allowed: a model.ckpt)")
    return seeds, (ckpts * len(seeds) if len(ckpts) == 1 else ckpts)


def train(a, seed: int, out: Path) -> str:
    """One model trained on --dataset with ``seed`` (``ptycho-study``); its checkpoint."""
    if study_main(["--train-npz", a.dataset, "--seed", str(seed), "--output-dir",
                   str(out / "model"), *shlex.split(a.train_args)]) != 0:
        raise RuntimeError(f"training seed {seed} failed (ptycho-study {a.train_args})")
    found = sorted((out / "model" / "runs").glob("*/model.ckpt"))
    if len(found) != 1:
        raise RuntimeError(f"expected one model.ckpt under {out / 'model' / 'runs'}, "
                           f"found {len(found)}")
    return str(found[0])


def live(a, ckpt: str, out: Path) -> float:
    """The scan replayed at full speed (``ptycho-live-sim --rate 0``), then ``ptycho-live
    --refine lsqml`` on it; the wall seconds of ``ptycho-live``."""
    with open(os.devnull, "w") as quiet:
        write_live_scan(LiveSimConfig(output=str(out / "scan.h5"), scan=a.scan or a.dataset,
                                      rate=0), out=quiet)
    t0 = time.perf_counter()
    if live_main(["--checkpoint", ckpt, "--source", str(out / "scan.h5"), "--output-dir",
                  str(out / "live"), "--overwrite", "--refine", "lsqml", "--refine-epochs",
                  str(a.refine_epochs), "--num-threads", str(a.num_threads)]) != 0:
        raise RuntimeError(f"ptycho-live failed on {out / 'scan.h5'}")
    return time.perf_counter() - t0


def settings(a, ckpt: str) -> dict:
    """What a seed's numbers depend on (a finished seed with the same is read back)."""
    return {"dataset": a.dataset, "scan": a.scan or a.dataset, "model": ckpt or a.train_args,
            "refine_epochs": a.refine_epochs, "flat_epochs": a.flat_epochs,
            "num_threads": a.num_threads, "flat_every": a.flat_every}


def one_seed(a, seed: int, ckpt: str, data) -> dict:
    """One seed's row and details (``seed_<S>/seed.json``, read back when it holds the same
    :func:`settings`)."""
    out = Path(a.output_dir) / f"seed_{seed}"
    done = out / "seed.json"
    if done.is_file():
        old = json.loads(done.read_text())
        if old.get("settings") == settings(a, ckpt):
            print(f"seed {seed}: read back from {done}", flush=True)
            return old
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    model = ckpt or train(a, seed, out)
    live_s = live(a, model, out)
    live_scores = h.live_scores(out / "live", data)
    threads = apply_num_threads(a.num_threads)[0]
    flat = dict(h.flat_lsqml(data, epochs=a.flat_epochs, seed=seed, every=a.flat_every or None),
                threads=threads)
    result = {"settings": settings(a, ckpt), "row": h.seed_row(seed, live_scores, flat, live_s),
              "seed": seed, "checkpoint": model, "load_at_start": load,
              "load_at_end": os.getloadavg()[0], "live": live_scores, "flat": flat}
    write_json_atomic(done, result)
    print(f"seed {seed}: {result['row']}", flush=True)
    return result


def main(argv=None) -> int:
    a = parse(argv)
    try:
        seeds, ckpts = check(a)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        data = load_dataset(a.dataset, require_ground_truth=True)
    except (OSError, ValueError) as err:
        print(f"error: --dataset: {err}", file=sys.stderr)
        return 2
    details = [one_seed(a, seed, ckpts[i] if ckpts else "", data)
               for i, seed in enumerate(seeds)]
    rows = [d["row"] for d in details]
    s = h.summary(rows)
    text = h.table(rows, s, a.refine_epochs, a.flat_epochs)
    print(text)
    print(write_json_atomic(Path(a.output_dir) / "handover.json", {
        "dataset": a.dataset, "scan": a.scan or a.dataset, "refine_epochs": a.refine_epochs,
        "flat_epochs": a.flat_epochs, "num_threads": a.num_threads, "rows": rows,
        "summary": s, "details": details, "table": text}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
