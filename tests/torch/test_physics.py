"""Tests for ptycho_torch.physics: forward model identities, losses, overlap constraint."""

import math

import numpy as np
import pytest
import torch

from ptycho_torch.physics import (
    LOSSES,
    FarFieldPtychography,
    apply_overlap_constraint,
    diffraction_amplitude,
    diffraction_intensity,
    extract_patches_from_region,
    far_field,
    get_loss,
    illuminate,
    merge_patches,
    normalized_amplitude_mae,
    poisson_nll,
    round_offsets,
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


# ------------------------------------------------------------------ losses


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


# ------------------------------------------------------------------ overlap constraint


def cut_group(obj, centre_xy, offsets_xy, N):
    """Cut patches whose centres are centre + offset (integer), with the project convention
    centre = (c0 + N//2, r0 + N//2). Returns (C, N, N)."""
    out = []
    for dx, dy in offsets_xy:
        x, y = centre_xy[0] + dx, centre_xy[1] + dy
        r0, c0 = y - N // 2, x - N // 2
        out.append(obj[r0 : r0 + N, c0 : c0 + N])
    return torch.stack(out)


def positions_of(offsets_xy, dtype=torch.float32):
    return torch.tensor(offsets_xy, dtype=dtype).reshape(1, len(offsets_xy), 1, 2)


SYM = [(-3, -3), (3, -3), (-3, 3), (3, 3)]  # channel c = di*2 + dj, (x, y)
ASYM = [(-5, -1), (2, -1), (-5, 4), (2, 4)]


@pytest.mark.parametrize("offsets", [SYM, ASYM, [(-4, 0), (1, -6), (6, 2), (0, 5)]])
def test_constraint_returns_true_patches(offsets):
    N = 16
    obj = crandn(64, 64, seed=30)
    patches = cut_group(obj, (32, 30), offsets, N)[None]
    pos = positions_of(offsets)
    out = apply_overlap_constraint(patches, pos)
    assert out.shape == patches.shape and out.dtype == torch.complex64
    torch.testing.assert_close(out, patches, rtol=0, atol=1e-6)


def test_merge_weights_and_region_placement():
    N = 16
    obj = crandn(64, 64, seed=31)
    cx, cy = 32, 32
    patches = cut_group(obj, (cx, cy), SYM, N)[None]
    region, weight = merge_patches(patches, positions_of(SYM))
    M = N + 2 * 3
    assert region.shape == (1, M, M) and weight.shape == (1, M, M)
    assert weight.dtype == torch.float32 and region.dtype == torch.complex64
    # independent count
    expected = np.zeros((M, M), np.float32)
    for dx, dy in SYM:
        r0, c0 = M // 2 + dy - N // 2, M // 2 + dx - N // 2
        expected[r0 : r0 + N, c0 : c0 + N] += 1
    np.testing.assert_array_equal(weight[0].numpy(), expected)
    assert weight[0, M // 2, M // 2] == 4  # centre covered by all four
    assert weight[0, 0, 0] == 1 and weight[0, 0, M // 2] == 2  # corner / edge
    assert weight.sum() == 4 * N * N
    # the canvas is the object window around the group centre
    window = obj[cy - M // 2 : cy - M // 2 + M, cx - M // 2 : cx - M // 2 + M]
    torch.testing.assert_close(region[0], window, rtol=0, atol=1e-6)
    # explicit larger region is padded symmetrically, uncovered pixels are 0 with weight 0
    region2, weight2 = merge_patches(patches, positions_of(SYM), region_size=M + 4)
    torch.testing.assert_close(region2[0, 2:-2, 2:-2], region[0])
    assert weight2[0, :2].sum() == 0 and region2[0, :2].abs().sum() == 0
    torch.testing.assert_close(
        extract_patches_from_region(region2, positions_of(SYM), N), patches, rtol=0, atol=1e-6
    )
    with pytest.raises(ValueError, match="region_size = 20 is too small"):
        merge_patches(patches, positions_of(SYM), region_size=M - 2)


def test_half_integer_offsets_keep_spacing():
    N = 16
    offs = [(-1.5, -1.5), (1.5, -1.5), (-1.5, 1.5), (1.5, 1.5)]
    r = round_offsets(positions_of(offs))
    assert r[0, :, 0].tolist() == [[-1, -1], [2, -1], [-1, 2], [2, 2]]
    obj = crandn(64, 64, seed=32)
    patches = cut_group(obj, (30, 30), [tuple(v) for v in r[0, :, 0].tolist()], N)[None]
    torch.testing.assert_close(apply_overlap_constraint(patches, positions_of(offs)), patches,
                               rtol=0, atol=1e-6)
    # sub-pixel jitter (< 0.5 px) around the integer offsets rounds away
    g = torch.Generator().manual_seed(0)
    jitter = r.float() + 0.9 * (torch.rand(1, 4, 1, 2, generator=g) - 0.5)
    torch.testing.assert_close(apply_overlap_constraint(patches, jitter), patches, rtol=0, atol=1e-6)


def test_inconsistent_patches_changed_and_idempotent():
    p = crandn(1, 4, 16, 16, seed=33)
    pos = positions_of(ASYM)
    once = apply_overlap_constraint(p, pos)
    assert (once - p).abs().max() > 0.1
    twice = apply_overlap_constraint(once, pos)
    torch.testing.assert_close(twice, once, rtol=0, atol=1e-6)
    # pixels covered by one patch only are untouched: patch 0 top-left corner
    torch.testing.assert_close(once[0, 0, 0, 0], p[0, 0, 0, 0])
    # overlap pixel = mean of covering patches. Patch 0 (offset -5,-1) local (15,15) is
    # canvas offset (x, y) = (-5+7, -1+7) = (2, 6) from the centre; patch 1 (2,-1) covers it at
    # local (15, 8), patch 2 (-5,4) at (10, 15), patch 3 (2,4) at (10, 8)
    mean4 = (p[0, 0, 15, 15] + p[0, 1, 15, 8] + p[0, 2, 10, 15] + p[0, 3, 10, 8]) / 4
    torch.testing.assert_close(once[0, 0, 15, 15], mean4)


def test_gradient_flows_through_constraint():
    p = crandn(2, 4, 16, 16, seed=34).requires_grad_(True)
    pos = torch.cat([positions_of(SYM), positions_of(ASYM)])
    out = apply_overlap_constraint(p, pos)
    out.real.sum().backward()
    assert torch.isfinite(torch.view_as_real(p.grad)).all()
    # the constraint is an averaging projection: sum of outputs has unit gradient
    torch.testing.assert_close(p.grad, torch.ones_like(p), rtol=0, atol=1e-6)
    q = crandn(2, 4, 16, 16, seed=35).requires_grad_(True)
    diffraction_amplitude(apply_overlap_constraint(q, pos), crandn(16, 16, seed=36)).sum().backward()
    assert torch.isfinite(torch.view_as_real(q.grad)).all() and q.grad.abs().sum() > 0


def test_overlap_weight_blends_linearly_between_input_and_merged():
    p = crandn(2, 4, 16, 16, seed=39)
    pos = torch.cat([positions_of(SYM), positions_of(ASYM)])
    merged = apply_overlap_constraint(p, pos)
    assert apply_overlap_constraint(p, pos, 0.0) is p
    torch.testing.assert_close(apply_overlap_constraint(p, pos, 1.0), merged, rtol=0, atol=0)
    for w in (0.25, 0.7):
        out = apply_overlap_constraint(p, pos, w)
        torch.testing.assert_close(out, (1 - w) * p + w * merged, rtol=0, atol=1e-6)
        # consistent patches (cut from one object) stay fixed points for every weight
        torch.testing.assert_close(apply_overlap_constraint(merged, pos, w), merged, rtol=0,
                                   atol=1e-6)
    # the pull towards consistency shrinks with the weight: distance to merged is (1 - w)
    d = [float((apply_overlap_constraint(p, pos, w) - merged).abs().max()) for w in (0.2, 0.6)]
    assert d[0] == pytest.approx(2 * d[1], rel=1e-5)
    with pytest.raises(ValueError, match=r"^apply_overlap_constraint: weight=1\.5 is out of "
                                         r"range \(allowed: 0\.\.1\)$"):
        apply_overlap_constraint(p, pos, 1.5)


def test_gridsize1_and_zero_offsets_return_input():
    p = crandn(3, 1, 16, 16, seed=37)
    assert apply_overlap_constraint(p, torch.zeros(3, 1, 1, 2)) is p
    p4 = crandn(3, 4, 16, 16, seed=38)
    assert apply_overlap_constraint(p4, torch.zeros(3, 4, 1, 2)) is p4
    # C == 1 with a non-zero offset is still the identity
    assert apply_overlap_constraint(p, torch.full((3, 1, 1, 2), 2.0)) is p


def test_batched_equals_separate():
    N = 16
    obj = crandn(64, 64, seed=39)
    offsets = [SYM, ASYM, [(-2, -6), (4, -6), (-2, 1), (4, 1)]]
    # consistent group + random groups
    consistent = cut_group(obj, (32, 32), offsets[0], N)
    patches = torch.stack([consistent, crandn(4, N, N, seed=40), crandn(4, N, N, seed=41)])
    pos = torch.cat([positions_of(o) for o in offsets])
    batched = apply_overlap_constraint(patches, pos)
    for b in range(3):
        single = apply_overlap_constraint(patches[b : b + 1], pos[b : b + 1])
        torch.testing.assert_close(batched[b : b + 1], single, rtol=0, atol=1e-6)
    torch.testing.assert_close(batched[0], consistent, rtol=0, atol=1e-6)


def test_constraint_double_precision_gradcheck():
    p = crandn(1, 4, 5, 5, seed=42, dtype=torch.complex128).requires_grad_(True)
    pos = positions_of([(-1, -1), (1, -1), (-1, 1), (1, 1)], dtype=torch.float64)
    assert apply_overlap_constraint(p, pos).dtype == torch.complex128
    assert torch.autograd.gradcheck(lambda x: apply_overlap_constraint(x, pos), (p,))


def test_overlap_input_validation():
    p = crandn(2, 4, 16, 16)
    with pytest.raises(ValueError, match=r"positions must have shape \(B, C, 1, 2\)"):
        apply_overlap_constraint(p, torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match=r"patches must have shape \(B, C, N, N\)"):
        apply_overlap_constraint(p[0], torch.zeros(2, 4, 1, 2))
    with pytest.raises(ValueError, match="region must have shape"):
        extract_patches_from_region(p[0, 0], torch.zeros(2, 4, 1, 2), 16)
    region, _ = merge_patches(p, positions_of(SYM).expand(2, 4, 1, 2))
    with pytest.raises(ValueError, match="too small"):
        extract_patches_from_region(region, positions_of(SYM).expand(2, 4, 1, 2) * 3, 16)
