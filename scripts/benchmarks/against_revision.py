"""Speed of this tree against another git revision of the project, measured in one run.

The speed targets are ratios to the code as it was ("today's main" when a target was set),
not to this tree's own ``32`` path. So the revision's files are exported (``git archive``)
into a temporary folder and both trees are timed by the same cells, alternating: round 1
runs the base, then each variant of this tree (the working tree, uncommitted changes
included), round 2 again, and so on; each cell keeps its best round.

Every cell is a fresh process whose ``PYTHONPATH`` puts one tree first, so it imports that
tree's ``ptycho`` and ``ptycho_torch`` (and its ``scripts/benchmarks/training.py``); the cell
reports where they came from and the run stops if a cell imported the other tree. Each cell
builds the quick preset's generator (Hybrid, width 8) through the calls both trees have
(``from_preset``, ``config_factory.build_model``, ``predict_patches``) and measures:

- **fit**: patterns/s of Lightning's ``Trainer.fit`` (batch 16, N = 64), the tree's own
  ``lightning_throughput``;
- **inference N**: patterns/s of ``predict_patches`` (``forward_predict`` in batches of 64)
  at N = 64 and 128, 256 random patterns.

Variants: the base in its defaults; this tree in its defaults (``32``) and, where the CPU
has native bfloat16, with ``precision="bf16-mixed", channels_last=True``.

    python scripts/benchmarks/against_revision.py --base REV [--threads 1] [--rounds 3] \
        [--json PATH]

``--smoke`` (CI) runs one tiny round against ``HEAD``'s committed files.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from bench_common import write_json

_REPO = Path(__file__).resolve().parents[2]

CELL = r"""
import json, sys, time
from dataclasses import replace
import numpy as np, torch
kind, size, reps, threads, extra = sys.argv[1:6]
size, reps, threads, extra = int(size), int(reps), int(threads), json.loads(extra)
torch.set_num_threads(threads)
import ptycho, ptycho_torch
from ptycho_torch.engine.malloc import keep_freed_memory
keep_freed_memory()  # as every entry point does
from ptycho.config.config import DataConfig
from ptycho.config.presets import from_preset
cfg = from_preset("quick")
tc = replace(cfg.training, device="cpu", **extra)
if kind == "fit":
    import logging, warnings
    from training import lightning_throughput   # the tree's scripts/benchmarks/training.py
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    mc, tc = replace(cfg.model, N=size), replace(tc, scheduler="none")  # no validation
    rate = max(lightning_throughput((mc, tc, DataConfig(input_scale=1.0)), 24 if reps > 1 else 1,
                                    3 if reps > 1 else 1, torch.device("cpu"))
               for _ in range(reps))
else:
    from ptycho_torch.config_factory import build_model
    from ptycho_torch.engine.inference import predict_patches
    torch.manual_seed(0)
    model = build_model(replace(cfg.model, N=size), DataConfig(), tc).eval()
    n, batch = (256, 64) if reps > 1 else (16, 8)
    rng = np.random.default_rng(0)
    data = {"diffraction": rng.random((n, 1, size, size), dtype=np.float32),
            "coords_nominal": np.zeros((n, 1, 1, 2), np.float32), "input_scale_factor": 1.0}
    predict_patches(model, data, batch)  # warm-up: oneDNN primitives, allocator
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        predict_patches(model, data, batch)
        best = min(best, time.perf_counter() - t)
    rate = n / best
print(json.dumps({"rate": rate, "files": [ptycho.__file__, ptycho_torch.__file__]}))
"""

BF16 = {"precision": "bf16-mixed", "channels_last": True}


class RevisionError(ValueError):
    """A one-line refusal (the flag and what is allowed), printed without a traceback."""


def resolve(rev: str) -> str:
    """The full commit id of ``rev`` in this checkout."""
    if not (_REPO / ".git").exists():
        raise RevisionError(f"--base: needs the project's git checkout ({_REPO} is not one)")
    out = subprocess.run(["git", "-C", str(_REPO), "rev-parse", "--verify", "--quiet",
                          f"{rev}^{{commit}}"], stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise RevisionError(f"--base: git finds no commit {rev!r} in {_REPO} "
                            "(allowed: a commit id, branch or tag of this checkout)")
    return out.stdout.strip()


def export(commit: str, dest: Path) -> Path:
    """The files of ``commit`` written under ``dest`` (``git archive``; no worktree)."""
    tar = subprocess.run(["git", "-C", str(_REPO), "archive", "--format=tar", commit],
                         stdout=subprocess.PIPE, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(dest, filter="data")
    return dest


def run_cell(tree: Path, kind: str, size: int, reps: int, threads: int, extra: dict) -> float:
    """Patterns/s of one cell run with ``tree``'s packages (checked)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = os.pathsep.join([str(tree), str(tree / "scripts" / "benchmarks")])
    proc = subprocess.run([sys.executable, "-c", CELL, kind, str(size), str(reps),
                           str(threads), json.dumps(extra)], cwd=tree, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RevisionError(f"--base: a {kind} cell failed in {tree}: {last}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for f in out["files"]:
        if not Path(f).resolve().is_relative_to(tree.resolve()):
            raise RevisionError(f"--base: a cell meant for {tree} imported {f}")
    return float(out["rate"])


def measure(trees: dict, cells: list, rounds: int, reps: int, threads: int) -> dict:
    """Best patterns/s of every (cell, variant), the variants alternating within each
    round; ``trees`` maps a variant name to (tree, extra config)."""
    best: dict = {}
    for _ in range(rounds):
        for kind, size in cells:
            for name, (tree, extra) in trees.items():
                rate = run_cell(tree, kind, size, reps, threads, extra)
                key = (kind, size, name)
                best[key] = max(best.get(key, 0.0), rate)
    return best


def report(best: dict, cells: list, names: list) -> list:
    """Print the table (patterns/s and the ratio to the base); returns its rows."""
    rows = []
    print(f"{'patterns/s':<22}" + "".join(f"{n:>26}" for n in names))
    for kind, size in cells:
        base = best[(kind, size, names[0])]
        label = f"fit, N {size}" if kind == "fit" else f"inference, N {size}"
        line, row = f"{label:<22}", {"cell": kind, "N": size}
        for n in names:
            rate = best[(kind, size, n)]
            line += f"{rate:>17.1f} (x{rate / base:.2f})"
            row[n] = {"patterns_per_s": rate, "x_base": rate / base}
        print(line)
        rows.append(row)
    return rows


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--base", default="HEAD", help="the git revision to compare with "
                   "(default HEAD: the committed files against the working tree)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--reps", type=int, default=3, help="timed repeats in a cell (default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--smoke", action="store_true", help="one tiny round (CI): the script runs")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = _parse(argv)
    import torch
    from ptycho_torch.core.precision import bf16_supported
    try:
        for flag in ("rounds", "reps", "threads"):
            if getattr(a, flag) < 1:
                raise RevisionError(f"--{flag}: must be >= 1, got {getattr(a, flag)}")
        commit = resolve(a.base)
        with tempfile.TemporaryDirectory(prefix="against_revision_") as tmp:
            base = export(commit, Path(tmp) / "base")
            trees = {f"base {commit[:7]}": (base, {}), "this tree": (_REPO, {})}
            if bf16_supported("cpu"):
                trees["this tree bf16+CL"] = (_REPO, BF16)
            else:
                print("note: no native bfloat16 on this CPU: the bf16-mixed variant is left out")
            cells = [("fit", 32), ("infer", 32)] if a.smoke else [
                ("fit", 64), ("infer", 64), ("infer", 128)]
            rounds, reps = (1, 1) if a.smoke else (a.rounds, a.reps)
            print(f"torch {torch.__version__}, {a.threads} thread(s), {rounds} alternating "
                  f"round(s), load average before {os.getloadavg()[0]:.2f}")
            best = measure(trees, cells, rounds, reps, a.threads)
    except RevisionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = report(best, cells, list(trees))
    if a.json:
        write_json(a.json, {"base": commit, "threads": a.threads, "rounds": rounds,
                            "reps": reps, "smoke": a.smoke, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
