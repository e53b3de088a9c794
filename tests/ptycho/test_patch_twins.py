"""ptycho.patch_twins: the twin is the one a diffraction pattern cannot tell apart, and the
per-patch scores read a true patch, its twin and a mixture as such."""
import numpy as np
import pytest

from ptycho.forward import diffraction_amplitude
from ptycho.patch_twins import data_residuals, patch_twin_scores, twin_data_residuals, twin_of


def _patches(n=12, N=16, seed=0):
    rng = np.random.default_rng(seed)
    phase = rng.normal(0.0, 0.4, (n, N, N))
    amp = rng.uniform(0.5, 1.5, (n, N, N))
    return (amp * np.exp(1j * phase)).astype(np.complex128)


def _probe(N=16):
    y, x = np.mgrid[:N, :N] - N // 2
    return np.exp(-(x ** 2 + y ** 2) / (2 * 3.0 ** 2)) * np.exp(1j * 0.05 * x * y)


def test_an_exit_wave_and_its_twin_give_the_same_pattern():
    psi = _patches() * _probe()
    flat = np.ones((16, 16))
    a, b = diffraction_amplitude(psi, flat), diffraction_amplitude(twin_of(psi), flat)
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    # the mirror through pixel N/2, not (N-1)/2: a plain flip is the twin shifted by a pixel
    shifted = np.conj(psi[..., ::-1, ::-1])
    np.testing.assert_array_equal(twin_of(psi), np.roll(shifted, (1, 1), axis=(-2, -1)))
    np.testing.assert_array_equal(twin_of(twin_of(psi)), psi)
    assert twin_of(psi)[0, 8, 8] == np.conj(psi[0, 8, 8])   # the centre stays in place


def test_true_patches_twins_and_mixtures_are_told_apart():
    true, probe = _patches(), _probe()
    same = patch_twin_scores(true, true, probe)
    np.testing.assert_allclose(same["direct"], 1.0, atol=1e-12)
    assert same["twin_fraction"] == 0.0 and abs(same["median_twin"]) < 0.5
    flipped = patch_twin_scores(twin_of(true), true, probe)
    np.testing.assert_allclose(flipped["twin"], 1.0, atol=1e-12)
    np.testing.assert_allclose(flipped["direct"], same["twin"], atol=1e-12)
    assert flipped["twin_fraction"] == 1.0
    # the first third of the patches are twins: the fraction counts exactly those
    mixed = np.concatenate([twin_of(true[:4]), true[4:]])
    assert patch_twin_scores(mixed, true, probe)["twin_fraction"] == pytest.approx(4 / 12)


def test_a_constant_phase_and_the_amplitude_do_not_count():
    true, probe = _patches(), _probe()
    rng = np.random.default_rng(1)
    pred = np.exp(1j * np.angle(true)) * rng.uniform(0.1, 3.0, true.shape)   # other amplitude
    pred = pred * np.exp(1j * rng.uniform(-3, 3, (len(true), 1, 1)))         # per-patch offset
    s = patch_twin_scores(pred, true, probe)
    np.testing.assert_allclose(s["direct"], 1.0, atol=1e-9)
    assert s["median_direct"] == pytest.approx(1.0)


def test_the_weights_are_the_probe_intensity():
    # outside a small probe the prediction is noise: it does not count there
    true, N = _patches(n=4), 16
    probe = np.zeros((N, N))
    probe[6:11, 6:11] = 1.0
    pred = true.copy()
    outside = np.ones((N, N), bool)
    outside[6:11, 6:11] = False
    pred[:, outside] = np.exp(1j * np.random.default_rng(2).uniform(-3, 3, (4, outside.sum())))
    np.testing.assert_allclose(patch_twin_scores(pred, true, probe)["direct"], 1.0, atol=1e-9)
    modes = np.stack([probe, 0.5 * probe])        # modes: intensities summed, same support
    np.testing.assert_allclose(patch_twin_scores(pred, true, modes)["direct"], 1.0, atol=1e-9)
    assert np.all(patch_twin_scores(pred, true, np.ones((N, N)))["direct"] < 0.9)


def test_a_twin_symmetric_probe_cannot_tell_a_patch_from_its_twin():
    obj = _patches()
    sym = np.abs(_probe())                         # real and centro-symmetric about N/2
    np.testing.assert_allclose(twin_of(sym[None])[0], sym, atol=1e-12)
    measured = diffraction_amplitude(obj, sym)
    r = twin_data_residuals(obj, measured, sym)
    np.testing.assert_allclose(r["residual"], 0.0, atol=1e-6)
    np.testing.assert_allclose(r["twin_residual"], 0.0, atol=1e-5)
    # a probe that is not its own twin does tell them apart, and the truth fits better
    probe = _probe()
    r = twin_data_residuals(obj, diffraction_amplitude(obj, probe), probe)
    assert r["twin_fits_better"] == 0.0 and r["median_twin_residual"] > 0.1
    r = twin_data_residuals(twin_of(obj), diffraction_amplitude(obj, probe), probe)
    assert r["twin_fits_better"] == 1.0


def test_data_residuals_against_a_direct_computation():
    obj, probe = _patches(n=3), _probe()
    rng = np.random.default_rng(5)
    measured = 2.5 * diffraction_amplitude(obj, probe) + rng.normal(0, 0.01, (3, 16, 16))
    got = data_residuals(obj, measured, probe)
    for k in range(3):   # the scale by least squares, then the relative misfit
        a = np.abs(np.fft.fftshift(np.fft.fft2(obj[k] * probe, norm="ortho")))
        s = np.vdot(a, measured[k]).real / np.vdot(a, a).real
        want = np.linalg.norm(s * a - measured[k]) / np.linalg.norm(measured[k])
        assert got[k] == pytest.approx(want, rel=1e-4)
    # pixels marked invalid do not count
    bad = measured.copy()
    bad[:, 0, :] = 100.0
    valid = np.ones((16, 16), bool)
    valid[0, :] = False
    np.testing.assert_allclose(data_residuals(obj, bad, probe, valid),
                               data_residuals(obj, np.where(valid, measured, 0), probe, valid))
    with pytest.raises(ValueError, match=r"measured must have the patches' shape \(3, 16, 16\)"):
        data_residuals(obj, measured[:, :8], probe)


@pytest.mark.parametrize("pred_shape,true_shape,probe_shape,needle", [
    ((3, 16, 16), (3, 16, 8), (16, 16), "pred and true must be the same (n, N, N) stacks"),
    ((3, 16, 16), (3, 16, 16), (8, 8), "probe must be a non-zero (16, 16) field (got shape (8, 8))"),
])
def test_bad_shapes_are_refused(pred_shape, true_shape, probe_shape, needle):
    with pytest.raises(ValueError) as err:
        patch_twin_scores(np.ones(pred_shape, complex), np.ones(true_shape, complex),
                          np.ones(probe_shape))
    assert needle in str(err.value) and "\n" not in str(err.value)
