"""Ground-truth-free quality: how well a reconstruction re-simulates the measured patterns.

For each pattern, the reconstructed object patch is multiplied by the probe and propagated
with the same far-field operator as training; the predicted amplitudes are compared with
the measured ones over the measured detector pixels (bad pixels excluded, as in training):

- ``amplitude_mae``: ``sum|A_pred - A_meas| / sum A_meas`` over the whole scan, i.e.
  :func:`ptycho_torch.losses.normalized_amplitude_mae` of the scan as one batch;
- ``poisson_nll``: :func:`ptycho_torch.losses.poisson_nll` of the scan as one batch: the
  mean over measured pixels of :func:`ptycho_torch.losses.poisson_nll_terms` divided by
  ``m``, the mean measured count over the measured pixels of the whole scan.

Both are the training losses' own formulas, summed batch by batch with ``m`` fixed for the
scan, so the value does not depend on ``batch_size``. Both are 0 (MAE) or minimal (NLL)
for a perfect, noise-free reconstruction.

A network row reports two residuals (:func:`network_residuals`):

- ``data_residual``: of the **delivered object**, the stitched reconstruction (the whole
  stitched canvas, saved in ``recon.npz`` as ``stitched``, of which ``reconstruction`` is
  the scored region): its N x N patches at the scan positions (zero at pixels no stitched
  patch reached, and outside the canvas, :mod:`ptycho_torch.object_patches`), times one
  complex least-squares scale fitted to the network's patches (stitching may average or
  rescale; a constant factor is not a defect of the object). ``n_edge_patterns`` counts
  the patterns whose patch holds such zero pixels. Iterative rows score their whole object
  the same way.
- ``patch_residual``: of the network's raw per-pattern patches, before stitching.
"""
from __future__ import annotations

import numpy as np
import torch

from ptycho_torch.losses import poisson_nll_terms
from ptycho_torch.object_patches import object_patches
from ptycho_torch.physics import FarFieldPtychography


def data_residual(patches: np.ndarray, diffraction: np.ndarray, probe: np.ndarray, *,
                  photon_scale: float = 1.0, bad_pixels: np.ndarray | None = None,
                  batch_size: int = 256) -> dict:
    """Residual of complex ``patches`` (n, C, N, N) against measured amplitudes (same shape).

    ``probe`` (N, N) or (modes, N, N); ``bad_pixels`` (N, N) bool, True = not measured.
    Returns ``{"amplitude_mae", "poisson_nll", "n_patterns"}``.
    """
    if patches.shape != diffraction.shape:
        raise ValueError(f"patches have shape {patches.shape} but the measured diffraction "
                         f"{diffraction.shape} (expected equal shapes)")
    N = diffraction.shape[-1]
    measured = np.ones((N, N), bool)
    if bad_pixels is not None:
        bad = np.asarray(bad_pixels, dtype=bool)
        if bad.shape != (N, N):
            raise ValueError(f"bad_pixels has shape {bad.shape} (expected ({N}, {N}), the "
                             "detector shape)")
        measured = ~bad
    op = FarFieldPtychography(np.asarray(probe, dtype=np.complex64))
    w = torch.as_tensor(measured, dtype=torch.float64)
    s = float(photon_scale)
    n_frames = int(np.prod(diffraction.shape[:-2]))
    count = max(float(measured.sum()) * n_frames, 1.0)
    # m: the mean measured count of the whole scan (poisson_nll's m for the scan as a batch)
    sq = np.square(np.asarray(diffraction, dtype=np.float64)[..., measured])
    m = max(s * s * float(sq.sum()) / count, float(torch.finfo(torch.float64).tiny))
    abs_sum = obs_sum = nll_sum = 0.0
    with torch.no_grad():
        for start in range(0, diffraction.shape[0], batch_size):
            obj = torch.as_tensor(patches[start:start + batch_size]).to(torch.complex64)
            meas = torch.as_tensor(diffraction[start:start + batch_size]).to(torch.float64)
            pred = op(obj).to(torch.float64)
            abs_sum += float(((pred - meas).abs() * w).sum())
            obs_sum += float((meas * w).sum())
            nll_sum += float((poisson_nll_terms(pred, meas, s, m) * w).sum())
    return {"amplitude_mae": abs_sum / max(obs_sum / count, 1e-12) / count,
            "poisson_nll": nll_sum / count / m,
            "n_patterns": n_frames}


def network_residuals(rec, sub, probe: np.ndarray, *, photon_scale: float = 1.0,
                      bad_pixels: np.ndarray | None = None) -> tuple[dict, dict]:
    """``(data_residual, patch_residual)`` of a network reconstruction (module docstring).

    ``rec``: a :class:`ptycho_torch.reconstruction.Reconstruction` (``canvas`` the stitched object
    with its ``canvas_covered`` mask, placed at ``canvas_origin`` (row, col) of the object
    frame; without a canvas, ``recon`` placed at ``region`` = (row0, col0, height, width);
    ``patches`` the raw patches in scan order); ``sub``: the scored patterns (``centres``
    (n, C, 2) (x, y) in the object frame, ``diffraction`` (n, C, N, N)).
    """
    kw = dict(photon_scale=photon_scale, bad_pixels=bad_pixels)
    raw = data_residual(rec.patches, sub.diffraction, probe, **kw)
    N = sub.diffraction.shape[-1]
    if rec.canvas is not None:
        obj = np.asarray(rec.canvas)
        covered = np.asarray(rec.canvas_covered, dtype=bool)
        row0, col0 = (int(v) for v in rec.canvas_origin)
    else:
        obj = np.asarray(rec.recon)
        covered = np.ones(obj.shape, bool)
        row0, col0 = int(rec.region[0]), int(rec.region[1])
    local = np.asarray(sub.centres, dtype=np.float64) - np.array([col0, row0], np.float64)
    cut = object_patches(obj, local, N)
    denom = np.vdot(cut, cut)
    scale = np.vdot(cut, rec.patches) / denom if abs(denom) > 0 else np.complex128(1.0)
    delivered = data_residual((cut * scale).astype(np.complex64), sub.diffraction, probe, **kw)
    reached = object_patches(covered, local, N).reshape(-1, N * N)
    n_edge = int(np.count_nonzero(~reached.all(axis=1)))
    delivered.update(
        object_scale=float(abs(scale)), object_scale_phase=float(np.angle(scale)),
        n_edge_patterns=n_edge,
        note=(f"patches of the delivered {obj.shape[0]} x {obj.shape[1]} stitched object at "
              f"the scan positions, times its least-squares complex scale {abs(scale):.4g} "
              f"(phase {np.angle(scale):.3g} rad) against the raw patches; {n_edge} of "
              f"{local.shape[0] * local.shape[1]} patterns reach pixels that no stitched "
              "patch covered or that lie past the object's edge, where their patches are "
              "zero"))
    return delivered, raw


def test_object_residuals(rec, test, *, photon_scale: float | None = None) -> tuple[dict, dict]:
    """:func:`network_residuals` of a network's reconstruction of test object 0 of ``test``
    (a :class:`ptycho.dataset.PtychoDataset`); ``photon_scale`` defaults to the scan's."""
    sub = test.select(test.object_selection(0))
    s = test.photon_scale if photon_scale is None else photon_scale
    return network_residuals(rec, sub, test.probe, photon_scale=s, bad_pixels=test.bad_pixels)
