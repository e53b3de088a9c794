"""The probe's phase gauges: removed exactly, and invisible in every diffraction pattern."""
import math

import numpy as np
import pytest

from ptycho.probe_gauge import far_field_centroid, fix_phase_gauge
from ptycho.probes import make_probe, two_mode_probe

N = 32


def _ramp(k, n=N):
    ax = np.arange(n) - n // 2
    return np.exp(2j * math.pi * (k[0] * ax[:, None] + k[1] * ax[None, :]) / n)


def _object(seed=0, shape=(80, 90)):
    rng = np.random.default_rng(seed)
    return (0.5 + rng.random(shape)) * np.exp(1j * rng.uniform(-1, 1, shape))


def _patterns(obj, probe, corners):
    modes = probe[None] if probe.ndim == 2 else probe
    out = []
    for r, c in corners:
        patch = obj[r:r + N, c:c + N]
        out.append(sum(np.abs(np.fft.fft2(patch * m, norm="ortho")) ** 2 for m in modes))
    return np.array(out)


def test_a_whole_pixel_ramp_and_a_constant_phase_are_removed_exactly():
    p0 = make_probe(N).astype(np.complex128)
    drifted = p0 * _ramp((3, -2)) * np.exp(2.5j)
    probe, _, gauge = fix_phase_gauge(drifted, None, p0)
    assert gauge.ramp == pytest.approx((3.0, -2.0), abs=1e-9)
    assert gauge.phases[0] == pytest.approx(2.5, abs=1e-9)
    np.testing.assert_allclose(probe, p0, atol=1e-12)


def test_a_fractional_ramp_moves_the_centroid_back_to_the_reference():
    p0 = make_probe(N).astype(np.complex128)
    drifted = p0 * _ramp((0.4, 1.3))
    probe, _, gauge = fix_phase_gauge(drifted, None, p0)
    gap = (far_field_centroid(probe) - far_field_centroid(p0) + N / 2) % N - N / 2
    np.testing.assert_allclose(gap, 0, atol=1e-8)
    assert np.linalg.norm(probe - p0) < 0.5 * np.linalg.norm(drifted - p0) and gauge.ramp[1] > 1


@pytest.mark.parametrize("two_modes", [False, True])
def test_no_diffraction_pattern_changes(two_modes):
    p0 = (two_mode_probe(N) if two_modes else make_probe(N)).astype(np.complex128)
    rng = np.random.default_rng(1)
    drifted = p0 * _ramp((1.7, -0.6)) * np.exp(1j * rng.uniform(-3, 3, (p0.shape[0], 1, 1)) if two_modes
                                               else np.exp(-1.1j))
    obj = _object()
    probe, fixed_obj, _ = fix_phase_gauge(drifted, obj, p0)
    corners = [(0, 0), (13, 7), (40, 51), (47, 57)]
    np.testing.assert_allclose(_patterns(fixed_obj, probe, corners), _patterns(obj, drifted, corners),
                               rtol=1e-9, atol=1e-12)
    assert not np.allclose(fixed_obj, obj)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"reference: shape \(1, 16, 16\) does not match"):
        fix_phase_gauge(make_probe(N), None, make_probe(16))
