"""Where computations run: the one place a device name is resolved and CPU threads are set."""
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


def apply_num_threads(num_threads: int) -> None:
    """``torch.set_num_threads(num_threads)`` when it is set (0: torch's default). Every
    entry point that computes calls it first, whether or not it trains: a comparison that
    reuses its networks still runs Pty-chi, and on a shared CPU a thread too many makes
    that several times slower."""
    if num_threads:
        torch.set_num_threads(int(num_threads))
