"""Tests for ptycho_torch.core.overlap: the gridsize > 1 merge / re-extract constraint."""

import numpy as np
import pytest
import torch

from ptycho_torch.core.overlap import (
    apply_overlap_constraint,
    extract_patches_from_region,
    merge_patches,
    round_offsets,
)
from ptycho_torch.core.physics import diffraction_amplitude


def crandn(*shape, seed=0, dtype=torch.complex64):
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(*shape, generator=g, dtype=torch.float64)
    imag = torch.randn(*shape, generator=g, dtype=torch.float64)
    return torch.complex(real, imag).to(dtype)


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
