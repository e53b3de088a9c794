#!/usr/bin/env python
"""Digests of tiny study, comparison and dose-study results, for a bit-for-bit before/after.

    python -m tools.reproducibility_digests --output-dir /tmp/digests

Runs, on one torch thread, a tiny simulated study (``grid_lines_torch_runner``), a tiny
comparison (FNO and Hybrid, plus Pty-chi LSQML and network + LSQML rows when Pty-chi is
installed) and a tiny two-dose study, then prints the sha256 of every ``metrics.json``,
``comparison.json`` and ``dose_study.json`` with the fields that measure time (wall clock)
and the file stamps (which tell a reused row from a stale one) removed. At a fixed thread
count the project is reproducible by seed, so a refactor that keeps behaviour prints the
same digests (run it before and after, into the same ``--output-dir``, so recorded paths
agree). Exit 0; the digests go to stdout, one ``<digest>  <file>`` line each (the runs' own
tables go to ``runs.log`` there).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
for sub in ("", "scripts/studies"):
    if str(_REPO / sub) not in sys.path:
        sys.path.insert(0, str(_REPO / sub))

import dose_study  # noqa: E402
import grid_lines_compare  # noqa: E402
import grid_lines_torch_runner  # noqa: E402

TINY = ["--N", "32", "--object-size", "64", "--n-lines", "40", "--train-stride", "4",
        "--test-stride", "8", "--n-train-objects", "1", "--n-test-objects", "1", "--epochs", "1",
        "--batch-size", "16", "--fno-width", "8", "--fno-modes", "4", "--fno-blocks", "1",
        "--fno-cnn-blocks", "1", "--no-progress-bar", "--num-threads", "1"]


def is_timing(key: str) -> bool:
    """Fields that hold wall-clock measurements or file times (and the figures' lists)."""
    return (key.endswith("_time_s") or key.endswith("_per_s") or key.endswith("_stamp")
            or key in ("time_s", "seconds", "created", "figures", "snapshots"))


def comparable(value):
    """``value`` with every timing field removed, recursively."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if not is_timing(str(k))}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def digest(path: Path) -> str:
    data = comparable(json.loads(path.read_text()))
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--output-dir", default="outputs/reproducibility_digests")
    a = p.parse_args(argv)
    out = Path(a.output_dir)
    if out.exists():
        shutil.rmtree(out)
    iterative = importlib.util.find_spec("ptychi") is not None
    runs = [
        (grid_lines_torch_runner.main, [*TINY, "--architecture", "hybrid",
                                        "--output-dir", str(out / "study")]),
        (grid_lines_compare.main, [*TINY, "--architectures", "fno,hybrid",
                                   "--output-dir", str(out / "compare"),
                                   *(["--iterative", "lsqml", "--iterative-epochs", "3",
                                      "--refine", "lsqml", "--refine-epochs", "2"]
                                     if iterative else ["--iterative", "none"])]),
        (dose_study.main, [*TINY, "--architectures", "fno", "--nphotons-list", "1e3,1e9",
                           "--iterative", "none", "--output-dir", str(out / "dose")]),
    ]
    out.mkdir(parents=True)
    for entry, args in runs:
        with open(out / "runs.log", "a") as log, contextlib.redirect_stdout(log):
            code = entry(args)
        if code != 0:
            print(f"error: {entry.__module__} {' '.join(args)} failed", file=sys.stderr)
            return 1
    files = sorted([*out.rglob("metrics.json"), *out.rglob("comparison.json"),
                    *out.rglob("dose_study.json")])
    for f in files:
        print(f"{digest(f)}  {f.relative_to(out)}")
    print(f"# {len(files)} files; Pty-chi rows {'included' if iterative else 'skipped'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
