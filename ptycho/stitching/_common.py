"""Shared argument checks of the stitching modules."""
from __future__ import annotations

import numpy as np

# Patch pixels processed per block (bounds the temporary memory of a stitch).
_CHUNK_ELEMENTS = 1 << 20


def _as_patch_stack(patches, name: str = "patches") -> np.ndarray:
    """Return ``patches`` as an array of shape (n, N, N) (leading axes flattened)."""
    arr = np.asarray(patches)
    if arr.ndim < 3:
        raise ValueError(
            f"{name}: expected shape (n, N, N) (or (..., N, N)), got shape {arr.shape}"
        )
    if arr.shape[-1] != arr.shape[-2]:
        raise ValueError(f"{name}: patches must be square (N, N), got {arr.shape[-2:]}")
    if arr.shape[-1] < 1:
        raise ValueError(f"{name}: patch size must be >= 1, got shape {arr.shape}")
    return arr.reshape(-1, arr.shape[-2], arr.shape[-1])


def _check_int(value, name: str, lo: int, hi: int | None = None) -> int:
    """Validate an integer in [lo, hi] and return it as a python int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name}: got {v}, allowed {allowed}")
    return v
