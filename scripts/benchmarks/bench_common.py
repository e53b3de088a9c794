"""What every benchmark script shares: device choice and JSON output."""
from __future__ import annotations

import json
import sys
from pathlib import Path


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
