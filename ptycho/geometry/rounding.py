"""The project's one rounding rule for positions: the nearest pixel, halves up.

``round_half_up(v) = floor(v + 0.5)`` as int64, elementwise, in the dtype ``v`` comes in
(callers that need float64 arithmetic convert first). Every place that puts a patch at a
whole pixel (stitching, scored regions, object patches, the overlap constraint's canvas)
uses it, so a centre at x.5 lands on the same pixel everywhere; numpy's ``np.round``
(halves to even) would not. The torch twin inside the differentiable overlap constraint
(``ptycho_torch.core.overlap.round_offsets``) applies the same rule to tensors.
"""
from __future__ import annotations

import numpy as np


def round_half_up(values) -> np.ndarray:
    """``floor(values + 0.5)`` as int64 (module docstring)."""
    return np.floor(np.asarray(values) + 0.5).astype(np.int64)
