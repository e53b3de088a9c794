"""Tests for ptycho_torch.core.losses: zero loss and zero gradient at the truth, normalisation."""
import math

import pytest
import torch

from ptycho_torch.core.losses import LOSSES, get_loss, normalized_amplitude_mae, poisson_nll
from ptycho_torch.core.physics import diffraction_amplitude


def crandn(*shape, seed=0, dtype=torch.complex64):
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(*shape, generator=g, dtype=torch.float64)
    imag = torch.randn(*shape, generator=g, dtype=torch.float64)
    return torch.complex(real, imag).to(dtype)


def _obs(seed=19):
    obj = crandn(4, 1, 16, 16, seed=seed)
    probe = crandn(16, 16, seed=seed + 1)
    return diffraction_amplitude(obj, probe)


def test_mae_zero_and_zero_grad_at_truth():
    obs = _obs()
    pred = obs.clone().requires_grad_(True)
    loss = normalized_amplitude_mae(pred, obs)
    assert loss.item() == 0.0
    (g,) = torch.autograd.grad(loss, pred)
    assert torch.count_nonzero(g) == 0


def test_mae_value_and_normalization():
    obs = _obs()
    pred = obs + 0.1
    expected = 0.1 / obs.mean().item()
    assert normalized_amplitude_mae(pred, obs).item() == pytest.approx(expected, rel=1e-5)
    # invariant to a common scale of pred and obs
    assert normalized_amplitude_mae(7 * pred, 7 * obs).item() == pytest.approx(expected, rel=1e-5)
    # denominator is detached: gradient only through the numerator
    obs_r = obs.clone().requires_grad_(True)
    normalized_amplitude_mae(pred, obs_r).backward()
    torch.testing.assert_close(obs_r.grad, torch.full_like(obs, -1.0 / obs.numel() / obs.mean().item()))
    # all-zero observation is guarded (finite)
    z = torch.zeros(2, 3)
    assert normalized_amplitude_mae(z, z).item() == 0.0
    assert math.isfinite(normalized_amplitude_mae(z + 1e-3, z).item())
    with pytest.raises(ValueError, match="same shape"):
        normalized_amplitude_mae(z, torch.zeros(3, 2))


def test_poisson_nll_minimum_and_zero_grad_at_truth():
    obs = _obs(21)
    pred = obs.clone().requires_grad_(True)
    loss_true = poisson_nll(pred, obs)
    (g_true,) = torch.autograd.grad(loss_true, pred)

    gen = torch.Generator().manual_seed(0)
    perturbed = [
        obs * 1.1,
        obs * 0.9,
        (obs + 0.05 * obs.mean() * torch.randn(obs.shape, generator=gen)).abs(),
    ]
    for p in perturbed:
        p = p.clone().requires_grad_(True)
        loss_p = poisson_nll(p, obs)
        assert loss_p.item() > loss_true.item()
        (g_p,) = torch.autograd.grad(loss_p, p)
        assert g_true.abs().max() < 1e-4 * g_p.abs().max()
    assert math.isfinite(loss_true.item())
    assert abs(loss_true.item()) < 100  # O(1) after normalization


def test_poisson_nll_photon_scale_only_shifts_value():
    obs = _obs(23)
    pred = (obs * 1.2).requires_grad_(True)
    l1 = poisson_nll(pred, obs, photon_scale=1.0)
    (g1,) = torch.autograd.grad(l1, pred)
    s = 300.0
    l2 = poisson_nll(pred, obs, photon_scale=s)
    (g2,) = torch.autograd.grad(l2, pred)
    torch.testing.assert_close(g2, g1, rtol=1e-4, atol=1e-9)
    assert (l2 - l1).item() == pytest.approx(-math.log(s * s), rel=1e-4)


def test_poisson_nll_double_grad_matches_formula():
    obs = _obs(25).double()
    pred = (obs * 0.8 + 0.01).requires_grad_(True)
    loss = poisson_nll(pred, obs, eps=0.0)
    (g,) = torch.autograd.grad(loss, pred)
    m = (obs**2).mean()
    expected = (1 - obs**2 / pred.detach() ** 2) * 2 * pred.detach() / (obs.numel() * m)
    torch.testing.assert_close(g, expected, rtol=1e-10, atol=1e-14)


def test_get_loss():
    assert get_loss("mae") is normalized_amplitude_mae
    assert get_loss("poisson") is poisson_nll
    assert set(LOSSES) == {"mae", "poisson"}
    with pytest.raises(ValueError) as exc:
        get_loss("nope")
    assert str(exc.value) == "loss must be one of ['mae', 'poisson'], got 'nope'"
