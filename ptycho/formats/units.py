"""The unit rule: whether a file's patterns are photon counts or diffraction amplitudes.

With ``unit="auto"``:

1. an integer dtype (``uint16``, ``int32``, ...) means **counts**;
2. a float dtype whose values are all integers (``|x - round(x)| < 1e-6`` over an evenly
   strided sample of at most 10**6 values) and whose maximum is > 1 means **counts**;
3. anything else means **amplitude**.

``unit="counts"`` or ``unit="amplitude"`` forces the answer; any other value is refused.
"""
from __future__ import annotations

import numpy as np

from ptycho.formats.checks import fail

__all__ = ["UNITS", "decide_unit"]

UNITS = ("auto", "counts", "amplitude")

#: Values sampled by the unit rule (evenly strided over the flattened patterns).
_UNIT_SAMPLE = 1_000_000


def decide_unit(patterns: np.ndarray, unit: str, path: str, key: str) -> tuple[str, str]:
    """Apply the unit rule (module docstring); return ``(unit, unit_rule)``."""
    if not isinstance(unit, str) or unit not in UNITS:
        raise fail(path, "unit", f"is {unit!r}", "one of 'auto', 'counts', 'amplitude'")
    dtype = patterns.dtype
    if unit != "auto":
        return unit, f"forced by unit={unit!r} ({key!r} stored as {dtype})"
    if dtype.kind in "iu":
        return "counts", f"integer dtype {dtype} of {key!r} -> counts"
    flat = patterns.reshape(-1)
    if flat.size > _UNIT_SAMPLE:
        idx = np.linspace(0, flat.size - 1, _UNIT_SAMPLE).astype(np.int64)
        sample = flat[idx]
    else:
        sample = flat
    sample = sample.astype(np.float64)
    integral = bool(np.all(np.abs(sample - np.round(sample)) < 1e-6)) if sample.size else False
    vmax = float(np.max(flat)) if flat.size else 0.0
    n_s = int(sample.size)
    if integral and vmax > 1:
        return "counts", (f"float dtype {dtype} of {key!r} with integer values "
                          f"(|x - round(x)| < 1e-6 on {n_s} sampled values) and max "
                          f"{vmax:.6g} > 1 -> counts")
    why = "non-integer values" if not integral else f"max {vmax:.6g} <= 1"
    return "amplitude", f"float dtype {dtype} of {key!r} with {why} -> amplitude"
