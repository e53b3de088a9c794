"""The reference's probe preparations (``ptycho.probe_scaling``) and the probe fill, on
analytic probes whose answer is known."""
import numpy as np
import pytest

from ptycho.probe_scaling import fit_quadratic_phase, scale_probe, smooth_probe
from ptycho.probes import make_probe, probe_fill, scale_to_patterns

H, N = 32, 64


def gaussian_probe(n: int, width: float, a: float = 0.3, b: float = 0.004) -> np.ndarray:
    """A Gaussian amplitude of ``width`` px with the radial phase ``a + b r**2``, centred
    at (n//2, n//2)."""
    c = np.arange(n) - n // 2
    r2 = c[:, None] ** 2 + c[None, :] ** 2
    return np.exp(-r2 / (2 * width ** 2)) * np.exp(1j * (a + b * r2))


def test_fit_quadratic_phase_recovers_the_radial_phase_even_when_it_wraps():
    p = gaussian_probe(H, 8.0, a=0.7, b=0.02)  # 0.02 * 16**2 * 2 = 10 rad at the corners
    a, b = fit_quadratic_phase(p)
    assert b == pytest.approx(0.02, rel=1e-6)
    assert np.angle(np.exp(1j * (a - 0.7))) == pytest.approx(0.0, abs=1e-6)


def test_pad_without_smoothing_is_a_centred_zero_pad():
    p = gaussian_probe(H, 5.0)
    lo = N // 2 - H // 2
    for mode in ("pad", "pad_preserve"):
        out = scale_probe(p, N, mode, sigma=0.0)
        assert out.shape == (N, N) and out.dtype == np.complex64
        np.testing.assert_allclose(out[lo:lo + H, lo:lo + H], p, atol=1e-6)
        outside = np.ones((N, N), bool)
        outside[lo:lo + H, lo:lo + H] = False
        assert np.abs(out[outside]).max() == 0.0


def test_pad_preserve_smooths_then_pads():
    p = gaussian_probe(H, 3.0)
    out = scale_probe(p, N, "pad_preserve", sigma=1.0)
    lo = N // 2 - H // 2
    np.testing.assert_allclose(out[lo:lo + H, lo:lo + H], smooth_probe(p, 1.0), atol=1e-6)
    # a Gaussian of width 3 smoothed by 1 px has width sqrt(10): its peak falls by 3/sqrt(10)
    # (the 2-D peak by 9/10; sampled, so to 1 %)
    assert np.abs(out).max() == pytest.approx(0.9, rel=0.01)


def test_pad_extrapolate_edge_pads_the_amplitude_and_extends_the_fitted_phase():
    p = gaussian_probe(H, 10.0, a=0.2, b=0.01)
    out = scale_probe(p, N, "pad_extrapolate", sigma=0.0)
    lo = N // 2 - H // 2
    amp = np.abs(out)
    np.testing.assert_allclose(amp[lo:lo + H, lo:lo + H], np.abs(p), rtol=1e-5)
    np.testing.assert_allclose(amp[:lo, lo:lo + H], np.broadcast_to(np.abs(p)[0], (lo, H)),
                               rtol=1e-5)  # rows above: the first row repeated
    assert amp[0, 0] == pytest.approx(abs(p[0, 0]), rel=1e-5)  # corners: the corner value
    c = np.arange(N) - N // 2
    want = np.exp(1j * (0.2 + 0.01 * (c[:, None] ** 2 + c[None, :] ** 2)))
    np.testing.assert_allclose(out / np.maximum(amp, 1e-30), want, atol=1e-4)


def test_interpolate_resamples_onto_the_larger_grid_about_the_centre():
    p = np.abs(gaussian_probe(H, 4.0)).astype(complex)
    out = scale_probe(p, N, "interpolate")
    assert np.unravel_index(np.abs(out).argmax(), out.shape) == (N // 2, N // 2)
    # the same Gaussian in pixels of half the size: width 8
    np.testing.assert_allclose(np.abs(out), np.abs(gaussian_probe(N, 8.0)), atol=5e-3)


def test_modes_are_prepared_one_by_one():
    p = np.stack([gaussian_probe(H, 5.0), 0.5 * gaussian_probe(H, 3.0, b=0.0)])
    for mode in ("pad_preserve", "pad_extrapolate", "interpolate"):
        out = scale_probe(p, N, mode)
        assert out.shape == (2, N, N)
        np.testing.assert_allclose(out[1], scale_probe(p[1], N, mode), atol=1e-6)


def test_refusals_name_the_mode_and_the_size():
    with pytest.raises(ValueError, match=r"^probe scale mode 'zoom' is not allowed \(choose "
                       r"one of: pad, pad_preserve, pad_extrapolate, interpolate\)$"):
        scale_probe(gaussian_probe(H, 5.0), N, "zoom")
    with pytest.raises(ValueError, match=r"^probe of size 64 is larger than N=32 \(probe scale "
                       r"mode 'pad_extrapolate' only enlarges; use 'pad' to cut it, or N >= 64\)$"):
        scale_probe(gaussian_probe(N, 5.0), H, "pad_extrapolate")


def test_probe_fill_of_a_uniform_disk_and_of_the_study_probes():
    c = np.arange(N) - N // 2
    disk = (np.hypot(c[:, None], c[None, :]) <= 20).astype(complex)
    # 90 % of a uniform disk's energy lies within sqrt(0.9) of its radius
    assert probe_fill(disk) == pytest.approx(np.pi * 0.9 * 20 ** 2 / N ** 2, rel=0.03)
    # the synthetic aperture: 0.42 at N=64, 0.11 at N=128
    assert probe_fill(make_probe(64)) == pytest.approx(0.42, abs=0.005)
    assert probe_fill(make_probe(128)) == pytest.approx(0.11, abs=0.005)
    # zero-padding keeps the probe's extent and lowers the fill by the area ratio
    assert probe_fill(scale_probe(make_probe(64), 128, "pad")) == pytest.approx(
        probe_fill(make_probe(64)) / 4, rel=0.02)
    with pytest.raises(ValueError, match="no energy"):
        probe_fill(np.zeros((8, 8), complex))


def test_scale_to_patterns_gives_the_probe_that_made_the_patterns_through_a_unit_object():
    """Patterns of a unit object, A = |fft2(P, ortho)| (two modes adding in intensity):
    the same probe at any other scale is brought back to P exactly (Parseval)."""
    modes = np.stack([make_probe(32), 0.5 * gaussian_probe(32, 4.0)]).astype(np.complex64)
    amp = np.sqrt(np.sum(np.abs(np.fft.fft2(modes.astype(np.complex128), norm="ortho")) ** 2,
                         axis=0))
    patterns = np.stack([amp, amp, amp])
    scaled, k = scale_to_patterns(modes * 0.01, patterns)
    assert k == pytest.approx(100.0, rel=1e-6)
    np.testing.assert_allclose(scaled, modes, rtol=1e-5, atol=1e-6)
    assert scaled.dtype == np.complex64 and scaled.shape == modes.shape
    with pytest.raises(ValueError, match="probe intensity 0, mean pattern intensity"):
        scale_to_patterns(np.zeros((32, 32), np.complex64), patterns)
