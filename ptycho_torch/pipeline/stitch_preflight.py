"""The stitching of a scan's test object, checked before any work starts.

:func:`ptycho.reconstruction.stitch_test_object` places every patch of object 0 on a
canvas after training (a study) or after inference (``ptycho-reconstruct``). Two ways it
could fail there are refused here instead, in one line naming the file: a canvas whose
stitching would not fit in memory (:func:`ptycho.stitching.regions.check_canvas_memory`:
half of this machine's memory at 64 bytes per canvas pixel), and a ground truth that does
not cover every patch pixel that position stitching writes onto it.
"""
from __future__ import annotations

import numpy as np

from ptycho.config.config import InferenceConfig
from ptycho.dataset import PtychoDataset
from ptycho.stitching.regions import check_canvas_memory, patch_extent

__all__ = ["check_stitching"]


def _ground_truth(test: PtychoDataset, object_index: int) -> np.ndarray | None:
    """The ground truth that stitching uses for ``object_index`` (as stitch_test_object)."""
    if test.ground_truth is not None and object_index == 0:
        return test.ground_truth
    if test.ground_truth_all is not None and object_index < len(test.ground_truth_all):
        return test.ground_truth_all[object_index]
    return None


def check_stitching(test: PtychoDataset, inference: InferenceConfig, object_index: int = 0,
                    memory: int | None = None) -> None:
    """Refuse (one-line ValueError naming the file) a test object whose stitching would
    run out of memory, or whose ground truth does not cover its stitched patches."""
    centres = test.centres[test.object_selection(object_index)].reshape(-1, 2)
    centres = centres.astype(np.float64)
    N = test.N
    crop = None if inference.stitch == "tiles" else inference.crop_for(N)
    gt = _ground_truth(test, object_index)
    try:
        check_canvas_memory(centres, N, crop, None if gt is None else gt.shape, memory)
    except ValueError as err:
        raise ValueError(f"dataset '{test.path}': {err}") from None
    if gt is None or inference.stitch == "tiles":
        return
    c0, c1, r0, r1 = patch_extent(centres, N, crop)
    H, W = gt.shape[:2]
    if c0 < 0 or r0 < 0 or c1 > W or r1 > H:
        lo, hi = centres.min(axis=0), centres.max(axis=0)
        raise ValueError(
            f"dataset '{test.path}': key 'YY_ground_truth' has shape ({H}, {W}), which does "
            f"not cover the positions of object {object_index} (x {lo[0]:.1f}..{hi[0]:.1f}, "
            f"y {lo[1]:.1f}..{hi[1]:.1f} px): their N = {N} patches, cropped to {crop}, "
            f"reach columns {c0}..{c1 - 1} and rows {r0}..{r1 - 1} (expected a ground truth "
            "covering every stitched patch pixel)")
