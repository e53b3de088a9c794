"""Ground-truth-free quality: how well a reconstruction re-simulates the measured patterns.

For each pattern, the reconstructed object patch is multiplied by the probe and propagated
with the same far-field operator as training; the predicted amplitudes are compared with
the measured ones over the measured detector pixels:

- ``amplitude_mae``: ``sum|A_pred - A_meas| / sum A_meas`` (the normalized MAE of the
  training loss, over the whole scan);
- ``poisson_nll``: the Poisson negative log-likelihood per pixel of the counts
  ``(s A)^2`` without the data-only term, divided by the mean count (``s`` the photon
  scale), as :func:`ptycho_torch.physics.poisson_nll` computes it for one batch.

Both are 0 (MAE) or minimal (NLL) for a perfect, noise-free reconstruction.
"""
from __future__ import annotations

import numpy as np
import torch

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
    op = FarFieldPtychography(np.asarray(probe, dtype=np.complex64))
    N = diffraction.shape[-1]
    w = torch.ones(N, N, dtype=torch.float64) if bad_pixels is None else \
        torch.as_tensor(~np.asarray(bad_pixels, dtype=bool), dtype=torch.float64)
    s2 = float(photon_scale) ** 2
    abs_sum = obs_sum = nll_sum = count_sum = 0.0
    eps = 1e-8
    mean_counts = s2 * float(np.mean(np.square(diffraction, dtype=np.float64)))
    with torch.no_grad():
        for start in range(0, diffraction.shape[0], batch_size):
            obj = torch.as_tensor(patches[start:start + batch_size]).to(torch.complex64)
            meas = torch.as_tensor(diffraction[start:start + batch_size]).to(torch.float64)
            pred = op(obj).to(torch.float64)
            abs_sum += float(((pred - meas).abs() * w).sum())
            obs_sum += float((meas * w).sum())
            i_pred, i_obs = s2 * pred.square(), s2 * meas.square()
            nll = i_pred - i_obs * torch.log(i_pred + eps * mean_counts)
            nll_sum += float((nll * w).sum())
            count_sum += float(w.sum()) * meas.shape[0] * meas.shape[1]
    return {"amplitude_mae": abs_sum / max(obs_sum, 1e-300),
            "poisson_nll": nll_sum / max(count_sum, 1.0) / max(mean_counts, 1e-300),
            "n_patterns": int(diffraction.shape[0] * diffraction.shape[1])}
