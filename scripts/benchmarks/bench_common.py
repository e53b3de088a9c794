"""What every benchmark script shares: common flags, device choice and JSON output."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def add_common_args(p, *, device_default: str | None = "auto") -> None:
    """The flags every benchmark has: --device (unless ``device_default`` is None),
    --threads and --json."""
    if device_default is not None:
        p.add_argument("--device", choices=("cpu", "cuda", "auto"), default=device_default)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")


def select_device(name: str):
    """'auto' -> cuda when available else cpu; 'cuda' without CUDA prints the one-line
    error and returns None (the caller exits with 2)."""
    import torch  # here, so numpy-only benchmarks start fast

    if name == "cuda" and not torch.cuda.is_available():
        print("error: --device=cuda but no CUDA device is available (allowed: cpu, auto)",
              file=sys.stderr)
        return None
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` (creating its folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")
