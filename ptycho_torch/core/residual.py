"""Ground-truth-free quality: how well a reconstruction re-simulates the measured patterns.

For each pattern, the reconstructed object patch is multiplied by the probe and propagated
with the same far-field operator as training; the predicted amplitudes are compared with
the measured ones over the measured detector pixels (bad pixels excluded, as in training):

- ``amplitude_mae``: ``sum|A_pred - A_meas| / sum A_meas`` over the whole scan, i.e.
  :func:`ptycho_torch.core.losses.normalized_amplitude_mae` of the scan as one batch;
- ``poisson_nll``: :func:`ptycho_torch.core.losses.poisson_nll` of the scan as one batch: the
  mean over measured pixels of :func:`ptycho_torch.core.losses.poisson_nll_terms` divided by
  ``m``, the mean measured count over the measured pixels of the whole scan.

Both are the training losses' own formulas, summed batch by batch with ``m`` fixed for the
scan, so the value does not depend on ``batch_size``. Both are 0 (MAE) or minimal (NLL)
for a perfect, noise-free reconstruction.

A network row reports two residuals (:func:`network_residuals`):

- ``data_residual``: of the **delivered object**, the stitched reconstruction (the whole
  stitched canvas, saved in ``recon.npz`` as ``stitched``, of which ``reconstruction`` is
  the scored region): its N x N patches at the scan positions (zero at pixels no stitched
  patch reached, and outside the canvas, :mod:`ptycho.geometry.patches`), times one
  complex scale fitted to the network's patches (stitching may average or rescale; a
  constant factor is not a defect of the object), :func:`exit_wave_scale`: least squares
  weighted by the probe's intensity, since only the exit wave is measured. Unweighted over
  the whole N x N window, the fit is led by pixels the probe does not light, where the
  network's patches are unconstrained: on the N = 128, 500-pattern run-1084 benchmark it
  gave a scale of 0.54 and a residual 3.40x Pty-chi LSQML's; weighted, 1.04x (positions as
  given, seed 42). ``n_edge_patterns`` counts the patterns whose patch holds such zero
  pixels. Iterative rows score their whole object the same way.
- ``patch_residual``: of the network's raw per-pattern patches, before stitching.

A whole object (the stitched canvas, a Pty-chi object, the ground truth) is scored with
:func:`object_residual`: at a sub-pixel scan position the object is cut at the integer
corner and the probe moved by the fractional rest (:func:`ptycho.geometry.patches.
subpixel_cuts`), the far-field model the simulators use, so the true object of a simulated
scan reaches the noise floor at any positions. Cutting at the rounded centre instead
misplaces each pattern by up to half a pixel: on 300 patterns of the run-1084 benchmark at
1e9 photons the true object scores 0.052 that way and 0.0011 (the noise) this way.
"""
from __future__ import annotations

import numpy as np
import torch

from ptycho_torch.core.losses import poisson_nll_terms
from ptycho.geometry.patches import object_patches, subpixel_cuts
from ptycho_torch.core.physics import FarFieldPtychography, diffraction_intensity


def _shifted_amplitude(modes: torch.Tensor, obj: torch.Tensor, shifts: np.ndarray) -> torch.Tensor:
    """``sqrt(sum_k |F(obj * P_k(r - f))|^2)`` for ``obj`` (b, C, N, N), probe ``modes``
    (K, N, N) and per-pattern ``shifts`` (b, C, 2) (fx, fy), the probe moved by a Fourier
    phase ramp (as :func:`ptycho.probes.shift_modes`)."""
    N = modes.shape[-1]
    k = torch.fft.fftfreq(N, dtype=torch.float64)
    f = torch.as_tensor(shifts, dtype=torch.float64)
    phase = k[None, None, :, None] * f[..., 1, None, None] + k[None, None, None, :] * f[..., 0, None, None]
    ramp = torch.exp(-2j * torch.pi * phase).to(modes.dtype)           # (b, C, N, N)
    moved = torch.fft.ifft2(torch.fft.fft2(modes)[None, None] * ramp[:, :, None])
    # (b, C, K, N, N): each mode's intensity, summed incoherently
    return diffraction_intensity(obj[:, :, None], moved).sum(dim=2).sqrt()


def data_residual(patches: np.ndarray, diffraction: np.ndarray, probe: np.ndarray, *,
                  photon_scale: float = 1.0, bad_pixels: np.ndarray | None = None,
                  batch_size: int = 256, probe_shifts: np.ndarray | None = None) -> dict:
    """Residual of complex ``patches`` (n, C, N, N) against measured amplitudes (same shape).

    ``probe`` (N, N) or (modes, N, N); ``bad_pixels`` (N, N) bool, True = not measured;
    ``probe_shifts`` (n, C, 2): the probe of each pattern moved by this (fx, fy)
    (:func:`object_residual`), else the probe as given for every pattern.
    Returns ``{"amplitude_mae", "poisson_nll", "n_patterns"}``.
    """
    if patches.shape != diffraction.shape:
        raise ValueError(f"patches have shape {patches.shape} but the measured diffraction "
                         f"{diffraction.shape} (expected equal shapes)")
    if probe_shifts is not None and np.shape(probe_shifts) != patches.shape[:-2] + (2,):
        raise ValueError(f"probe_shifts have shape {np.shape(probe_shifts)} (expected "
                         f"{patches.shape[:-2] + (2,)}, one (fx, fy) per pattern)")
    N = diffraction.shape[-1]
    measured = np.ones((N, N), bool)
    if bad_pixels is not None:
        bad = np.asarray(bad_pixels, dtype=bool)
        if bad.shape != (N, N):
            raise ValueError(f"bad_pixels has shape {bad.shape} (expected ({N}, {N}), the "
                             "detector shape)")
        measured = ~bad
    op = FarFieldPtychography(np.asarray(probe, dtype=np.complex64))
    modes = op.probe if op.probe.ndim == 3 else op.probe.reshape(1, N, N)
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
            if probe_shifts is None:
                pred = op(obj).to(torch.float64)
            else:
                pred = _shifted_amplitude(modes, obj, probe_shifts[start:start + batch_size]
                                          ).to(torch.float64)
            abs_sum += float(((pred - meas).abs() * w).sum())
            obs_sum += float((meas * w).sum())
            nll_sum += float((poisson_nll_terms(pred, meas, s, m) * w).sum())
    return {"amplitude_mae": abs_sum / max(obs_sum / count, 1e-12) / count,
            "poisson_nll": nll_sum / count / m,
            "n_patterns": n_frames}


def exit_wave_scale(cut: np.ndarray, patches: np.ndarray, probe: np.ndarray) -> complex:
    """The complex ``s`` minimising ``sum |P|^2 |s * cut - patches|^2`` over every pattern
    and pixel: ``cut`` and ``patches`` (n, C, N, N), ``|P|^2`` the probe's intensity summed
    over its modes (``probe`` (N, N) or (modes, N, N)). 1 where ``cut`` is zero wherever the
    probe lights it."""
    p = np.asarray(probe)
    weight = np.square(np.abs(p)).reshape(-1, *p.shape[-2:]).sum(axis=0)
    denom = float(np.sum(weight * np.square(np.abs(cut))))
    if denom <= 0.0:
        return complex(1.0)
    return complex(np.sum(weight * np.conj(cut) * patches) / denom)


def object_residual(obj: np.ndarray, centres: np.ndarray, diffraction: np.ndarray,
                    probe: np.ndarray, *, scale: complex = 1.0, **kw) -> dict:
    """:func:`data_residual` of a whole object ``obj`` (H, W) times ``scale`` at the scan
    ``centres`` (n, C, 2) (x, y) in its frame, cut as the far-field model does at sub-pixel
    positions (module docstring); ``kw`` as :func:`data_residual`."""
    cut, shifts = subpixel_cuts(obj, centres, diffraction.shape[-1])
    return data_residual((cut * scale).astype(np.complex64), diffraction, probe,
                         probe_shifts=shifts, **kw)


def _local_centres(rec, sub) -> tuple[np.ndarray, np.ndarray]:
    """``(object, centres in its frame)``: the stitched canvas (or ``recon`` at ``region``)
    of ``rec`` and ``sub.centres`` moved into it."""
    if rec.canvas is not None:
        obj, (row0, col0) = np.asarray(rec.canvas), (int(v) for v in rec.canvas_origin)
    else:
        obj, row0, col0 = np.asarray(rec.recon), int(rec.region[0]), int(rec.region[1])
    return obj, np.asarray(sub.centres, dtype=np.float64) - np.array([col0, row0], np.float64)


def whole_object_residual(rec, sub, probe: np.ndarray, **kw) -> dict:
    """:func:`object_residual` of the whole object of an iterative reconstruction ``rec``
    (its ``canvas`` at ``canvas_origin``) on the patterns of ``sub``; ``kw`` as
    :func:`data_residual`."""
    obj, local = _local_centres(rec, sub)
    return object_residual(obj, local, sub.diffraction, probe, **kw)


def network_residuals(rec, sub, probe: np.ndarray, *, photon_scale: float = 1.0,
                      bad_pixels: np.ndarray | None = None) -> tuple[dict, dict]:
    """``(data_residual, patch_residual)`` of a network reconstruction (module docstring).

    ``rec``: a :class:`ptycho.reconstruction.Reconstruction` (``canvas`` the stitched object
    with its ``canvas_covered`` mask, placed at ``canvas_origin`` (row, col) of the object
    frame; without a canvas, ``recon`` placed at ``region`` = (row0, col0, height, width);
    ``patches`` the raw patches in scan order); ``sub``: the scored patterns (``centres``
    (n, C, 2) (x, y) in the object frame, ``diffraction`` (n, C, N, N)).
    """
    kw = dict(photon_scale=photon_scale, bad_pixels=bad_pixels)
    raw = data_residual(rec.patches, sub.diffraction, probe, **kw)
    N = sub.diffraction.shape[-1]
    obj, local = _local_centres(rec, sub)
    covered = (np.asarray(rec.canvas_covered, dtype=bool) if rec.canvas is not None
               else np.ones(obj.shape, bool))
    scale = exit_wave_scale(object_patches(obj, local, N), rec.patches, probe)
    delivered = object_residual(obj, local, sub.diffraction, probe, scale=scale, **kw)
    reached = object_patches(covered, local, N).reshape(-1, N * N)
    n_edge = int(np.count_nonzero(~reached.all(axis=1)))
    delivered.update(
        object_scale=float(abs(scale)), object_scale_phase=float(np.angle(scale)),
        n_edge_patterns=n_edge,
        note=(f"patches of the delivered {obj.shape[0]} x {obj.shape[1]} stitched object at "
              f"the scan positions, times its complex scale {abs(scale):.4g} (phase "
              f"{np.angle(scale):.3g} rad), least squares against the raw patches weighted "
              f"by the probe's intensity; {n_edge} of "
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
