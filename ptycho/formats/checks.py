"""The format readers' one-line refusal and the array checks that raise it.

Every refusal is one line, ``dataset '<file>': key '<key>' <what> (expected <allowed>)``,
naming the file and the key as the file itself names it (an HDF5 attribute is written
``dataset@attribute``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_finite", "check_real", "fail", "finite_scalar", "shape_text"]


def fail(path: str, key: str, what: str, expected: str) -> ValueError:
    """The project's one-line refusal, naming the file and the key."""
    text = f"dataset '{path}': key '{key}' {what} (expected {expected})"
    return ValueError(" ".join(text.split("\n")))


def shape_text(a: np.ndarray) -> str:
    """``(n, H, W)``: the shape of ``a`` as messages write it."""
    return "(" + ", ".join(str(s) for s in np.shape(a)) + ")"


def check_real(path: str, key: str, arr: np.ndarray) -> np.ndarray:
    """``arr`` itself when its dtype is a real integer or float; refused otherwise."""
    if arr.dtype.kind not in "fiu":
        raise fail(path, key, f"has dtype {arr.dtype}", "a real integer or float dtype")
    return arr


def check_finite(path: str, key: str, arr: np.ndarray) -> None:
    """Refuse NaN / Inf in ``arr``, counting each."""
    if arr.size and not np.isfinite(arr).all():
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(arr.size - np.isfinite(arr).sum() - n_nan)
        raise fail(path, key, f"contains non-finite values ({n_nan} NaN, {n_inf} Inf)",
                   "finite values only")


def finite_scalar(path: str, key: str, value: Any) -> float:
    """``value`` as a finite float (any shape holding one value); refused otherwise."""
    try:
        v = float(np.asarray(value).reshape(()))
    except (TypeError, ValueError):
        raise fail(path, key, f"is {value!r}", "a real scalar") from None
    if not np.isfinite(v):
        raise fail(path, key, f"is {v!r}", "a finite real scalar")
    return v
