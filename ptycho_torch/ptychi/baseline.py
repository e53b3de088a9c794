"""The iterative row of a study: Pty-chi's object as the network path's Reconstruction."""
from __future__ import annotations

import numpy as np

from ptycho.config.config import InferenceConfig
from ptycho.dataset import PtychoDataset
from ptycho.stitching import clip_to_region
from ptycho.geometry.patches import object_patches
from ptycho_torch.ptychi.engine import PtychiOptions, reconstruct
from ptycho_torch.ptychi.scan import scan_for_ptychi
from ptycho.reconstruction import Reconstruction, scored_region


def iterative_reconstruction(test: PtychoDataset, obj: np.ndarray, *, time_s: float,
                             n_patterns: int, batch_size: int, inference=None):
    """An iterative object (H, W) of test object 0 as the network path's Reconstruction:
    clipped to the region the network rows are scored on
    (:func:`ptycho.reconstruction.scored_region` with ``inference``, default
    ``InferenceConfig()``), with the ground truth clipped alike, and the object's patches
    at the scan positions."""
    N = test.N
    sub = test.select(test.object_selection(0))
    region = scored_region(test, InferenceConfig() if inference is None else inference)
    gt = None if test.ground_truth is None else np.ascontiguousarray(
        clip_to_region(test.ground_truth, region), dtype=np.complex64)
    recon = clip_to_region(obj, region)
    return Reconstruction(recon=np.ascontiguousarray(recon, dtype=np.complex64),
                          ground_truth=gt, region=tuple(int(v) for v in region),
                          patches=object_patches(obj, sub.centres, N).astype(np.complex64),
                          inference_time_s=time_s, stitch_time_s=0.0, n_patterns=n_patterns,
                          infer_batch_size=batch_size,
                          stitch={"mode": "none", "note": "Pty-chi reconstructs the whole object"},
                          canvas=np.ascontiguousarray(obj, dtype=np.complex64),
                          canvas_covered=np.ones(obj.shape[:2], bool), canvas_origin=(0, 0))


def reconstruct_iterative(engine: str, test: PtychoDataset, *, epochs: int = 100,
                          batch_size: int | None = None, device: str = "auto", seed: int = 0,
                          inference=None):
    """Pty-chi reconstruction of test object 0, clipped to the network's scoring region.

    Returns ``(Reconstruction, IterativeResult)``: the first is the same dataclass the
    network path gives (``ptycho_torch.pipeline.study``), clipped to the same scored region
    (:func:`ptycho.reconstruction.scored_region` with ``inference``), so
    ``ptycho.reconstruction.score`` applies as is. Its ``patches`` are the object's patches at
    the scan positions (for the data residual), its ``inference_time_s`` the whole
    iterative reconstruction time and its ``infer_batch_size`` Pty-chi's batch size.
    """
    scan = scan_for_ptychi(test, 0)
    res, _ = reconstruct(scan, PtychiOptions(engine, epochs=epochs, batch_size=batch_size,
                                             device=device, seed=seed))
    rec = iterative_reconstruction(test, res.obj, time_s=res.time_s, n_patterns=res.n_patterns,
                                   batch_size=res.batch_size, inference=inference)
    return rec, res
