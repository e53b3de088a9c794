"""Tests for ptycho_torch.core.physics: forward model identities and the operator module."""


import numpy as np
import pytest
import torch

from ptycho_torch.core.physics import (
    FarFieldPtychography,
    diffraction_amplitude,
    diffraction_intensity,
    far_field,
    illuminate,
)


def crandn(*shape, seed=0, dtype=torch.complex64):
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(*shape, generator=g, dtype=torch.float64)
    imag = torch.randn(*shape, generator=g, dtype=torch.float64)
    return torch.complex(real, imag).to(dtype)


def np_amplitude(obj, probe, modes=False):
    """Independent numpy reference: fftshift(|fft2(O*P, norm='ortho')|)."""
    obj = np.asarray(obj, dtype=np.complex128)
    probe = np.asarray(probe, dtype=np.complex128)
    if modes:
        psi = obj[..., None, :, :] * probe
        f = np.fft.fftshift(np.fft.fft2(psi, norm="ortho"), axes=(-2, -1))
        return np.sqrt((np.abs(f) ** 2).sum(axis=-3))
    f = np.fft.fftshift(np.fft.fft2(obj * probe, norm="ortho"), axes=(-2, -1))
    return np.abs(f)


# ------------------------------------------------------------------ forward model


def test_parseval():
    psi = crandn(3, 2, 32, 32, seed=1)
    f = far_field(psi)
    assert f.dtype == torch.complex64 and f.shape == psi.shape
    lhs = (f.abs() ** 2).sum(dim=(-2, -1))
    rhs = (psi.abs() ** 2).sum(dim=(-2, -1))
    torch.testing.assert_close(lhs, rhs, rtol=1e-5, atol=0)


def test_delta_at_origin_gives_flat_far_field():
    N = 16
    psi = torch.zeros(N, N, dtype=torch.complex64)
    psi[0, 0] = 1.0
    amp = far_field(psi).abs()
    torch.testing.assert_close(amp, torch.full((N, N), 1.0 / N), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("N", [16, 17])
def test_constant_object_puts_all_energy_at_centre(N):
    obj = torch.full((N, N), 0.7 + 0.2j, dtype=torch.complex64)
    probe = torch.full((N, N), 1.5 - 0.5j, dtype=torch.complex64)
    amp = diffraction_amplitude(obj, probe)
    expected = torch.zeros(N, N)
    # unitary FFT of a constant c: N * c at DC, zero elsewhere
    expected[N // 2, N // 2] = N * abs((0.7 + 0.2j) * (1.5 - 0.5j))
    torch.testing.assert_close(amp, expected, rtol=1e-5, atol=1e-5)
    assert amp.argmax().item() == (N // 2) * N + N // 2


def test_global_phase_invariance():
    obj = crandn(4, 1, 32, 32, seed=2)
    probe = crandn(32, 32, seed=3)
    phase = torch.exp(torch.tensor(1j * 1.234, dtype=torch.complex64))
    a0 = diffraction_amplitude(obj, probe)
    a1 = diffraction_amplitude(phase * obj, probe)
    torch.testing.assert_close(a1, a0, rtol=1e-5, atol=1e-6)
    modes = crandn(3, 32, 32, seed=4)
    torch.testing.assert_close(
        diffraction_amplitude(phase * obj, modes, probe_modes=True),
        diffraction_amplitude(obj, modes, probe_modes=True),
        rtol=1e-5,
        atol=1e-6,
    )


def test_matches_numpy_single_mode_and_broadcast_probe():
    obj = crandn(5, 4, 24, 24, seed=5)
    probe = crandn(24, 24, seed=6)
    amp = diffraction_amplitude(obj, probe)
    assert amp.dtype == torch.float32 and amp.shape == (5, 4, 24, 24)
    np.testing.assert_allclose(amp.numpy(), np_amplitude(obj.numpy(), probe.numpy()), rtol=1e-5, atol=1e-6)
    # per-sample probe of shape (B, C, N, N)
    probe_bc = crandn(5, 4, 24, 24, seed=7)
    np.testing.assert_allclose(
        diffraction_amplitude(obj, probe_bc).numpy(),
        np_amplitude(obj.numpy(), probe_bc.numpy()),
        rtol=1e-5,
        atol=1e-6,
    )


def test_matches_numpy_probe_modes():
    obj = crandn(5, 4, 24, 24, seed=8)
    modes = crandn(3, 24, 24, seed=9)
    amp = diffraction_amplitude(obj, modes, probe_modes=True)
    assert amp.dtype == torch.float32 and amp.shape == (5, 4, 24, 24)
    np.testing.assert_allclose(
        amp.numpy(), np_amplitude(obj.numpy(), modes.numpy(), modes=True), rtol=1e-5, atol=1e-6
    )
    inten = diffraction_intensity(obj, modes, probe_modes=True)
    np.testing.assert_allclose(inten.numpy(), amp.numpy() ** 2, rtol=1e-5, atol=1e-6)
    # one mode == plain single-mode model
    torch.testing.assert_close(
        diffraction_amplitude(obj, modes[:1], probe_modes=True),
        diffraction_amplitude(obj, modes[0]),
        rtol=1e-5,
        atol=1e-6,
    )
    assert illuminate(obj, modes, probe_modes=True).shape == (5, 4, 3, 24, 24)
    with pytest.raises(ValueError, match="probe"):
        illuminate(obj, modes[0], probe_modes=True)


def test_amplitude_gradients_finite_including_zero_intensity():
    obj = crandn(2, 1, 16, 16, seed=10).requires_grad_(True)
    probe = crandn(16, 16, seed=11)
    probe[:, :8] = 0  # half the probe dark
    modes = torch.stack([probe, 0.5 * probe])
    for amp in (diffraction_amplitude(obj, probe), diffraction_amplitude(obj, modes, probe_modes=True)):
        (g,) = torch.autograd.grad(amp.sum(), obj)
        assert torch.isfinite(torch.view_as_real(g)).all()
        assert g.abs().sum() > 0
    # object fully zero -> zero intensity everywhere: value exactly 0, gradient finite
    zero = torch.zeros(1, 1, 8, 8, dtype=torch.complex64, requires_grad=True)
    amp = diffraction_amplitude(zero, modes[:, :8, :8], probe_modes=True)
    assert torch.equal(amp, torch.zeros_like(amp))
    (g,) = torch.autograd.grad(amp.sum(), zero)
    assert torch.isfinite(torch.view_as_real(g)).all()


def test_gradcheck_amplitude_double():
    obj = crandn(1, 2, 4, 4, seed=12, dtype=torch.complex128).requires_grad_(True)
    probe = crandn(4, 4, seed=13, dtype=torch.complex128)
    modes = crandn(2, 4, 4, seed=14, dtype=torch.complex128)
    assert diffraction_amplitude(obj, probe).dtype == torch.float64
    assert torch.autograd.gradcheck(lambda o: diffraction_amplitude(o, probe), (obj,))
    assert torch.autograd.gradcheck(lambda o: diffraction_amplitude(o, modes, probe_modes=True), (obj,))


# ------------------------------------------------------------------ module


def test_module_matches_functions_and_holds_probe_buffer():
    probe = crandn(16, 16, seed=15)
    phys = FarFieldPtychography(probe)
    obj = crandn(3, 4, 16, 16, seed=16)
    torch.testing.assert_close(phys(obj), diffraction_amplitude(obj, probe))
    torch.testing.assert_close(phys.intensity(obj), phys(obj) ** 2, rtol=1e-5, atol=1e-6)
    assert "probe" in phys.state_dict() and phys.probe.dtype == torch.complex64
    assert not phys.probe_modes and phys.N == 16
    assert list(phys.parameters()) == []

    modes = crandn(3, 16, 16, seed=17)
    phys_m = FarFieldPtychography(modes.numpy())  # numpy accepted
    assert phys_m.probe_modes
    torch.testing.assert_close(phys_m(obj), diffraction_amplitude(obj, modes, probe_modes=True))

    phys_4d = FarFieldPtychography(probe[None, None])
    torch.testing.assert_close(phys_4d(obj), phys(obj))

    phys_d = FarFieldPtychography(probe, dtype=torch.complex128)
    assert phys_d(obj.to(torch.complex128)).dtype == torch.float64


@pytest.mark.parametrize(
    "bad",
    [
        torch.ones(16, 16),  # real dtype
        torch.ones(16, dtype=torch.complex64),  # 1-D
        torch.ones(16, 12, dtype=torch.complex64),  # not square
        torch.ones(1, 1, 1, 16, 16, dtype=torch.complex64),  # 5-D
        torch.full((8, 8), float("nan"), dtype=torch.complex64),  # NaN
        [[1.0]],  # not a tensor
    ],
)
def test_module_rejects_bad_probe(bad):
    with pytest.raises(ValueError, match="probe"):
        FarFieldPtychography(bad)


def test_module_rejects_bad_object():
    phys = FarFieldPtychography(crandn(16, 16, seed=18))
    with pytest.raises(ValueError, match=r"obj_patches must have shape \(\.\.\., 16, 16\)"):
        phys(crandn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="obj_patches must be complex"):
        phys(torch.ones(2, 1, 16, 16))
