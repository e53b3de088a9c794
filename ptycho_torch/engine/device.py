"""Where computations run: the one place a device name is resolved (CPU threads:
:mod:`ptycho_torch.threads`)."""
from __future__ import annotations

import torch


def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' when available else 'cpu'; 'cuda' without CUDA is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no CUDA device is available (allowed here: auto, cpu)")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device={name!r} is not allowed (choose one of: 'auto', 'cpu', 'cuda')")
    return name

