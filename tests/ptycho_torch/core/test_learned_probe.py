"""The learned probe's constraints and gauges (ptycho_torch/core/learned_probe.py)."""
import math

import numpy as np
import pytest
import torch

from ptycho.probes import make_probe
from ptycho_torch.core.learned_probe import LearnedProbe, energy_radius

N = 32


def _probe():
    return torch.from_numpy(make_probe(N).astype(np.complex64))


def _ramp(kx, ky):
    yy, xx = torch.meshgrid(torch.arange(N) - N // 2, torch.arange(N) - N // 2, indexing="ij")
    return torch.exp(2j * math.pi * (kx * xx + ky * yy) / N).to(torch.complex64)


def _corr(a, b):
    return float(abs(torch.vdot(a.reshape(-1), b.reshape(-1))) / (a.norm() * b.norm()))


def test_starts_exactly_at_the_given_probe():
    p0 = _probe()
    torch.testing.assert_close(LearnedProbe(p0)(p0), p0, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("factor", [2.0, 0.3, 1j, -1.0])
def test_global_scale_and_phase_are_gauged_away(factor):
    p0 = _probe()
    lp = LearnedProbe(p0, support_radius=N)      # the whole window
    with torch.no_grad():
        lp.correction.copy_(torch.view_as_real((factor - 1) * p0))
    torch.testing.assert_close(lp(p0), p0, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kx, ky, least", [(1, -2, 0.9999), (1.5, -0.5, 0.99)])
def test_a_phase_ramp_is_gauged_away(kx, ky, least):
    """An integer ramp moves the far field by whole pixels and is undone exactly; a
    fractional one leaks across frequencies and is undone to within 1 %."""
    p0 = _probe()
    lp = LearnedProbe(p0, support_radius=N)
    with torch.no_grad():
        lp.correction.copy_(torch.view_as_real(p0 * _ramp(kx, ky) - p0))
    assert _corr(lp(p0).detach(), p0) > least
    assert _corr(p0 * _ramp(kx, ky), p0) < 0.9      # the ramp itself is a different probe


def test_support_and_intensity_hold_and_gradients_flow():
    p0 = _probe()
    lp = LearnedProbe(p0, support_radius=8.0)
    with torch.no_grad():
        lp.correction.copy_(torch.view_as_real(0.5 * p0 * (1 - lp.support)))  # outside only
    torch.testing.assert_close(lp(p0), p0, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        lp.correction.normal_(0, 0.05)
    out = lp(p0)
    assert float((out.detach().abs() ** 2).sum()) == pytest.approx(float(p0.abs().square().sum()), rel=1e-5)
    out.abs().sum().backward()
    assert lp.correction.grad is not None and torch.isfinite(lp.correction.grad).all()


def test_energy_radius_of_a_disk():
    yy, xx = torch.meshgrid(torch.arange(N) - N // 2, torch.arange(N) - N // 2, indexing="ij")
    disk = ((yy ** 2 + xx ** 2) <= 36).to(torch.complex64)
    assert energy_radius(disk, 1.0) == pytest.approx(6.0)
    with pytest.raises(ValueError, match="probe has zero intensity"):
        energy_radius(torch.zeros(N, N, dtype=torch.complex64))
