"""Training losses on detector amplitudes: normalized amplitude MAE and Poisson NLL.

Both take predicted and observed amplitudes of equal shape (``(B, C, N, N)``) and an
optional ``(N, N)`` detector mask (1 = measured), and average over the measured pixels
only: a bad pixel contributes nothing (it is not a zero measurement).
:func:`ptycho_torch.core.residual.data_residual` sums the same terms over a whole scan.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

import torch
from torch import Tensor

__all__ = ["normalized_amplitude_mae", "poisson_nll", "poisson_nll_terms", "LOSSES", "get_loss"]


def _check_pair(pred: Tensor, obs: Tensor, fn: str) -> None:
    if pred.shape != obs.shape:
        raise ValueError(
            f"{fn}: pred_amp and obs_amp must have the same shape, got {tuple(pred.shape)} and "
            f"{tuple(obs.shape)}"
        )
    if pred.is_complex() or obs.is_complex():
        raise ValueError(f"{fn}: pred_amp and obs_amp must be real amplitudes, got complex input")


def _masked_mean(x: Tensor, mask: Optional[Tensor]) -> Tensor:
    """Mean of ``x`` over the measured pixels (``mask`` broadcast over the last two axes)."""
    if mask is None:
        return x.mean()
    w = mask.to(x.dtype).expand_as(x)
    return (x * w).sum() / w.sum().clamp_min(1.0)


def normalized_amplitude_mae(pred_amp: Tensor, obs_amp: Tensor, *, eps: float = 1e-12,
                             mask: Optional[Tensor] = None) -> Tensor:
    """Amplitude MAE normalized by the mean observed amplitude (reference default loss).

    ``mean(|pred_amp - obs_amp|) / max(mean(obs_amp).detach(), eps)``, both means taken
    over the measured pixels only when ``mask`` ((N, N), 1 = measured, 0 = bad pixel) is
    given: a bad pixel contributes nothing, it is not treated as a zero measurement.

    Args:
        pred_amp, obs_amp: real amplitudes of equal shape (e.g. ``(B, C, N, N)`` float32).
        eps: floor for the denominator, so an all-zero observation gives a finite (huge
            unless ``pred_amp`` is also zero) loss instead of NaN. No host/device sync.
        mask: optional (N, N) detector mask.

    Returns:
        0-dim real tensor. Exactly 0 at ``pred_amp == obs_amp``; the subgradient there is
        0 (``torch.abs`` has gradient 0 at 0).
    """
    _check_pair(pred_amp, obs_amp, "normalized_amplitude_mae")
    denom = _masked_mean(obs_amp.detach(), mask).clamp_min(eps)
    return _masked_mean((pred_amp - obs_amp).abs(), mask) / denom


def poisson_nll(
    pred_amp: Tensor,
    obs_amp: Tensor,
    photon_scale: float | Tensor = 1.0,
    *,
    eps: float = 1e-8,
    mask: Optional[Tensor] = None,
) -> Tensor:
    """Poisson negative log-likelihood of counts, normalized to be O(1).

    With ``s = photon_scale``: predicted counts ``I_p = (s * pred_amp)^2``, observed counts
    ``I_o = (s * obs_amp)^2`` and ``m = mean(I_o)`` (detached)::

        loss = mean(I_p - I_o * log(I_p + eps * m)) / m

    i.e. the Poisson NLL without the data-only ``log(I_o!)`` term, divided by the mean
    count. ``eps`` is *relative* to the mean observed intensity, so the gradient is
    independent of ``photon_scale``; ``photon_scale`` only shifts the value by the
    constant ``-log(s^2)``. The gradient w.r.t. ``I_p`` is ``(1 - I_o / (I_p + eps*m)) / (n*m)``,
    which vanishes (up to ``eps``) at ``pred_amp == obs_amp``, the minimum.

    Args:
        pred_amp, obs_amp: real non-negative amplitudes of equal shape.
        photon_scale: simulation scale ``s`` turning amplitudes into sqrt(counts).
        eps: relative floor inside the log (default 1e-8).
        mask: optional (N, N) detector mask (1 = measured); means run over measured pixels.

    Returns:
        0-dim real tensor.
    """
    _check_pair(pred_amp, obs_amp, "poisson_nll")
    s2 = photon_scale * photon_scale
    i_obs = (s2 * obs_amp.square()).detach()
    m = _masked_mean(i_obs, mask).clamp_min(torch.finfo(i_obs.dtype).tiny)
    return _masked_mean(poisson_nll_terms(pred_amp, obs_amp, photon_scale, m, eps=eps),
                        mask) / m


def poisson_nll_terms(pred_amp: Tensor, obs_amp: Tensor, photon_scale: float | Tensor,
                      mean_count: float | Tensor, *, eps: float = 1e-8) -> Tensor:
    """The per-pixel terms ``I_p - I_o * log(I_p + eps * m)`` of :func:`poisson_nll`.

    ``mean_count`` is ``m``, the mean observed count over the measured pixels of the whole
    set the loss is taken over (one batch for training, the whole scan for
    :func:`ptycho_torch.core.residual.data_residual`); ``poisson_nll`` is the masked mean of
    these terms divided by ``m``. The observed counts are detached.
    """
    s2 = photon_scale * photon_scale
    i_pred = s2 * pred_amp.square()
    i_obs = (s2 * obs_amp.square()).detach()
    return i_pred - i_obs * torch.log(i_pred + eps * mean_count)


LOSSES: Dict[str, Callable[..., Tensor]] = {
    "mae": normalized_amplitude_mae,
    "poisson": poisson_nll,
}


def get_loss(name: str) -> Callable[..., Tensor]:
    """Loss function by name (``"mae"`` or ``"poisson"``).

    Raises:
        ValueError: ``loss must be one of ['mae', 'poisson'], got 'nope'``.
    """
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}") from None
