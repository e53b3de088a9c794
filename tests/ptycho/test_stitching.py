"""Tests for ptycho.stitching: exact reassembly of true patches, coverage, errors."""

import dataclasses

import numpy as np
import pytest

from ptycho.stitching import (
    STITCH_MODES,
    SUBPIXEL_MODES,
    StitchOptions,
    canvas_for_positions,
    stitch,
    clip_to_region,
    grid_region,
    probe_weights,
    stitch_by_positions,
    stitch_grid_tiles,
)


def _object(h, w, seed=0):
    rng = np.random.default_rng(seed)
    re = rng.standard_normal((h, w))
    im = rng.standard_normal((h, w))
    return (re + 1j * im).astype(np.complex64)


def _grid_patches(obj, N, stride, n_side):
    """True patches at top-left (i*stride, j*stride), row-major, by explicit slicing."""
    out = np.empty((n_side * n_side, N, N), dtype=obj.dtype)
    k = 0
    for i in range(n_side):
        for j in range(n_side):
            out[k] = obj[i * stride : i * stride + N, j * stride : j * stride + N]
            k += 1
    return out


def _grid_centres(N, stride, n_side):
    """Patch centres (x, y) = (c0 + N//2, r0 + N//2) in row-major scan order."""
    i, j = np.meshgrid(np.arange(n_side), np.arange(n_side), indexing="ij")
    x = j.ravel() * stride + N // 2
    y = i.ravel() * stride + N // 2
    return np.stack([x, y], axis=1).astype(np.float64)


# Geometry like the study (N=64, stride 10) but smaller, plus an odd N - stride case.
GEOMS = [(16, 4, 5), (64, 10, 4), (15, 4, 3), (8, 8, 3)]


@pytest.mark.parametrize("N,stride,n_side", GEOMS)
def test_grid_tiles_reproduce_clipped_object_exactly(N, stride, n_side):
    size = (n_side - 1) * stride + N
    obj = _object(size, size)
    patches = _grid_patches(obj, N, stride, n_side)
    stitched = stitch_grid_tiles(patches, n_side, stride)
    region = grid_region(N, stride, n_side)
    assert stitched.shape == (n_side * stride, n_side * stride)
    assert stitched.dtype == np.complex64
    np.testing.assert_array_equal(stitched, clip_to_region(obj, region))


def test_grid_region_values_and_clip_keeps_trailing_axes():
    assert grid_region(64, 10, 33) == (27, 27, 330, 330)
    assert grid_region(128, 10, 27) == (59, 59, 270, 270)
    gt = np.arange(392 * 392, dtype=np.float32).reshape(392, 392, 1)
    clipped = clip_to_region(gt, grid_region(64, 10, 33))
    assert clipped.shape == (330, 330, 1)
    assert clipped[0, 0, 0] == gt[27, 27, 0]
    assert clipped[-1, -1, 0] == gt[27 + 329, 27 + 329, 0]
    with pytest.raises(ValueError, match="region"):
        clip_to_region(np.zeros((300, 300)), grid_region(64, 10, 33))


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, np.float32, np.float64])
def test_grid_tiles_dtype_preserved(dtype):
    patches = np.ones((9, 8, 8), dtype=dtype)
    assert stitch_grid_tiles(patches, 3, 4).dtype == dtype


def test_grid_tiles_errors():
    patches = np.zeros((10, 16, 16), dtype=np.complex64)
    with pytest.raises(ValueError, match=r"patches: got 10 patches, expected n_side\*\*2 = 9"):
        stitch_grid_tiles(patches, 3, 4)
    with pytest.raises(ValueError, match=r"stride: got 17, allowed in \[1, N=16\]"):
        stitch_grid_tiles(patches[:9], 3, 17)
    with pytest.raises(ValueError, match="patches: expected shape"):
        stitch_grid_tiles(patches[0], 1, 4)


@pytest.mark.parametrize("N,stride,n_side", GEOMS)
@pytest.mark.parametrize("use_crop", [False, True])
def test_positions_reproduce_object_on_covered_area(N, stride, n_side, use_crop):
    size = (n_side - 1) * stride + N
    obj = _object(size, size, seed=1)
    patches = _grid_patches(obj, N, stride, n_side)
    centres = _grid_centres(N, stride, n_side)
    crop = stride if use_crop else None
    canvas, coverage = stitch_by_positions(patches, centres, (size, size), crop=crop)
    assert canvas.shape == (size, size) and canvas.dtype == np.complex64
    assert coverage.shape == (size, size)
    covered = coverage > 0
    # Mean of k identical float32 values, summed in float64: exact.
    np.testing.assert_array_equal(canvas[covered], obj[covered])
    assert np.all(canvas[~covered] == 0)
    if use_crop:
        # Exactly the grid-tile region, each pixel covered once, identical to grid tiles.
        region = grid_region(N, stride, n_side)
        expected_cov = np.zeros((size, size), dtype=bool)
        expected_cov[region[0] : region[0] + region[2], region[1] : region[1] + region[3]] = True
        np.testing.assert_array_equal(covered, expected_cov)
        assert coverage.max() == 1
        np.testing.assert_array_equal(
            clip_to_region(canvas, region), stitch_grid_tiles(patches, n_side, stride)
        )
    else:
        assert covered.all()  # full patches tile the whole object


def test_positions_coverage_counts_known_pixels():
    # N=16, stride 4, 5x5 grid on a 32x32 object; whole patches.
    N, stride, n_side = 16, 4, 5
    size = (n_side - 1) * stride + N
    patches = np.ones((n_side * n_side, N, N), dtype=np.float32)
    _, cov = stitch_by_positions(patches, _grid_centres(N, stride, n_side), (size, size))
    # Pixel (r, c) is covered by patches with i*stride <= r < i*stride + N (same for c).
    def count(r):
        return sum(1 for i in range(n_side) if i * stride <= r < i * stride + N)

    for r, c in [(0, 0), (3, 5), (4, 4), (15, 16), (16, 16), (31, 31), (12, 20)]:
        assert cov[r, c] == count(r) * count(c), (r, c)
    assert cov[0, 0] == 1 and cov[15, 15] == 16 and cov[31, 31] == 1
    assert cov.sum() == n_side * n_side * N * N


def test_positions_average_overlaps_and_rounding():
    # Two constant 4x4 patches overlapping by 2 columns -> mean in the overlap.
    patches = np.stack([np.full((4, 4), 1.0), np.full((4, 4), 3.0)]).astype(np.float32)
    centres = np.array([[2.4, 2.0], [4.5, 2.0]])  # x rounds half-up: 2 and 5
    canvas, cov = stitch_by_positions(patches, centres, (4, 8))
    # top-left cols: 2-2=0 and 5-2=3 -> patch 0 cols 0..3, patch 1 cols 3..6.
    np.testing.assert_array_equal(cov[0], [1, 1, 1, 2, 1, 1, 1, 0])
    np.testing.assert_allclose(canvas[0], [1, 1, 1, 2, 3, 3, 3, 0])
    assert canvas.dtype == np.float32


def test_positions_accepts_channel_layout():
    # (n, C, N, N) patches with (n, C, 1, 2) centres, as in the gridsize-2 contract.
    N, stride, n_side = 8, 2, 4
    size = (n_side - 1) * stride + N
    obj = _object(size, size, seed=3)
    patches = _grid_patches(obj, N, stride, n_side).reshape(4, 4, N, N)
    centres = _grid_centres(N, stride, n_side).reshape(4, 4, 1, 2)
    canvas, cov = stitch_by_positions(patches, centres, (size, size))
    np.testing.assert_array_equal(canvas, obj)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, np.float32, np.float64])
def test_positions_dtype_preserved(dtype):
    patches = np.ones((3, 8, 8), dtype=dtype)
    centres = np.array([[4, 4], [6, 4], [8, 8]], dtype=np.float64)
    canvas, cov = stitch_by_positions(patches, centres, (16, 16))
    assert canvas.dtype == dtype
    assert np.issubdtype(cov.dtype, np.integer)


def test_positions_errors():
    patches = np.ones((2, 8, 8), dtype=np.complex64)
    with pytest.raises(ValueError,
                       match=r"centres: 1 patch\(es\) fall off the canvas \(16, 16\), first index 1"):
        stitch_by_positions(patches, np.array([[4.0, 4.0], [13.0, 4.0]]), (16, 16))
    with pytest.raises(ValueError, match="centres: 1 patch"):
        stitch_by_positions(patches, np.array([[4.0, 3.4], [4.0, 4.0]]), (16, 16))
    # With crop=2 the same centre is fine (only the central 2x2 region must fit).
    stitch_by_positions(patches, np.array([[1.0, 1.0], [4.0, 4.0]]), (16, 16), crop=2)
    with pytest.raises(ValueError, match="centres: expected shape"):
        stitch_by_positions(patches, np.zeros((3, 2)), (16, 16))
    with pytest.raises(ValueError, match="centres: contains NaN"):
        stitch_by_positions(patches, np.array([[4.0, np.nan], [4.0, 4.0]]), (16, 16))
    with pytest.raises(ValueError, match=r"crop: got 9, allowed in \[1, 8\]"):
        stitch_by_positions(patches, np.full((2, 2), 8.0), (16, 16), crop=9)


def _loop_stitch(patches, centres, shape, crop):
    """Reference: one patch at a time, its central ``crop`` region added at the rounded
    (half up) centre; overlaps averaged. Returns (canvas, coverage)."""
    N = patches.shape[-1]
    lo = (N - crop) // 2
    acc = np.zeros(shape, np.complex128)
    cov = np.zeros(shape, np.int64)
    for p, (x, y) in zip(patches, np.floor(centres + 0.5).astype(int)):
        r0, c0 = y - N // 2 + lo, x - N // 2 + lo
        acc[r0:r0 + crop, c0:c0 + crop] += p[lo:lo + crop, lo:lo + crop]
        cov[r0:r0 + crop, c0:c0 + crop] += 1
    out = np.zeros(shape, np.complex128)
    out[cov > 0] = acc[cov > 0] / cov[cov > 0]
    return out, cov


@pytest.mark.parametrize("crop", [None, 6])
def test_positions_equal_a_per_patch_loop(crop):
    """The vectorized placement is the plain per-patch loop (its speed is measured by
    scripts/benchmarks/stitching.py, never here)."""
    rng = np.random.default_rng(0)
    n, N, H = 300, 16, 80
    patches = (rng.standard_normal((n, N, N)) + 1j * rng.standard_normal((n, N, N))).astype(
        np.complex64
    )
    centres = rng.uniform(N // 2, H - N // 2 - 1, size=(n, 2))
    centres[:5] = np.floor(centres[:5]) + 0.5  # halves round up
    canvas, cov = stitch_by_positions(patches, centres, (H, H), crop=crop)
    ref, ref_cov = _loop_stitch(patches, centres, (H, H), N if crop is None else crop)
    np.testing.assert_array_equal(cov, ref_cov)
    assert cov.max() > 1 and (cov == 0).any()  # overlaps averaged, gaps left empty
    np.testing.assert_allclose(canvas, ref, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------
# Sub-pixel placement, phase alignment, weights, canvas sizing, StitchOptions / stitch
# ----------------------------------------------------------------------------------



def _smooth_object(size, fmax=5, seed=0):
    """Band-limited, periodic complex object (|frequency| <= fmax cycles per image)."""
    rng = np.random.default_rng(seed)
    u = np.fft.fftfreq(size) * size
    band = (np.abs(u)[:, None] <= fmax) & (np.abs(u)[None, :] <= fmax)
    spec = np.zeros((size, size), dtype=np.complex128)
    spec[band] = rng.standard_normal(band.sum()) + 1j * rng.standard_normal(band.sum())
    f = np.fft.ifft2(spec)
    f /= np.abs(f).std()
    return (1.0 + 0.3 * f.imag) * np.exp(1j * f.real)  # complex128


def _subpixel_patches(obj, centres, N):
    """patch_k[j] = obj(c_k - N//2 + j): Fourier-shift the (periodic) object by the
    fractional part of c_k, then cut the window at the rounded centre."""
    size = obj.shape[0]
    spec = np.fft.fft2(obj)
    u = np.fft.fftfreq(size)
    r = np.floor(centres + 0.5).astype(int)
    frac = centres - r
    out = np.empty((len(centres), N, N), dtype=np.complex64)
    for k, ((fx, fy), (x, y)) in enumerate(zip(frac, r)):
        moved = np.fft.ifft2(spec * np.exp(2j * np.pi * (u[:, None] * fy + u[None, :] * fx)))
        out[k] = moved[y - N // 2 : y - N // 2 + N, x - N // 2 : x - N // 2 + N]
    return out


def _rel_err(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_constants():
    assert STITCH_MODES == ("positions", "tiles")
    assert SUBPIXEL_MODES == ("none", "fourier", "bilinear")


@pytest.mark.parametrize("mode", ["fourier", "bilinear"])
@pytest.mark.parametrize("crop", [None, 6])
@pytest.mark.parametrize("dtype", [np.complex64, np.float32])
def test_subpixel_integer_centres_equal_none(mode, crop, dtype):
    rng = np.random.default_rng(4)
    n, N = 12, 16
    patches = rng.standard_normal((n, N, N)).astype(dtype)
    if np.issubdtype(dtype, np.complexfloating):
        patches = patches + 1j * rng.standard_normal((n, N, N)).astype(np.float32)
    centres = rng.integers(N // 2, 40 - N // 2, size=(n, 2)).astype(np.float64)
    ref, cov_ref = stitch_by_positions(patches, centres, (40, 40), crop=crop)
    out, cov = stitch_by_positions(patches, centres, (40, 40), crop=crop, subpixel=mode)
    assert out.dtype == ref.dtype
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(cov, cov_ref)


def test_subpixel_fourier_reproduces_smooth_object():
    size, N, stride, n_side = 96, 32, 8, 8
    obj = _smooth_object(size)
    rng = np.random.default_rng(5)
    i, j = np.meshgrid(np.arange(n_side), np.arange(n_side), indexing="ij")
    grid = np.stack([j.ravel(), i.ravel()], axis=1) * stride + N // 2 + 4
    centres = grid + rng.uniform(-0.5, 0.5, size=grid.shape)
    patches = _subpixel_patches(obj, centres, N)
    errs = {}
    for mode in SUBPIXEL_MODES:
        canvas, cov = stitch_by_positions(
            patches, centres, (size, size), crop=24, subpixel=mode
        )
        assert canvas.dtype == np.complex64
        rows = np.flatnonzero(cov.any(axis=1))
        cols = np.flatnonzero(cov.any(axis=0))
        inner = np.zeros(cov.shape, dtype=bool)
        inner[rows[0] + 4 : rows[-1] - 3, cols[0] + 4 : cols[-1] - 3] = True
        assert np.all(cov[inner] > 0)
        errs[mode] = _rel_err(canvas[inner], obj[inner])
    assert errs["fourier"] < 1e-3, errs
    assert errs["none"] > 10 * errs["fourier"], errs
    assert errs["fourier"] < errs["bilinear"] < errs["none"], errs


def test_subpixel_fourier_real_stays_real_and_matches_complex():
    rng = np.random.default_rng(6)
    n, N = 5, 16
    re = rng.standard_normal((n, N, N)).astype(np.float32)
    im = rng.standard_normal((n, N, N)).astype(np.float32)
    centres = rng.uniform(N // 2, 32 - N // 2, size=(n, 2))
    for mode in ("fourier", "bilinear"):
        a, _ = stitch_by_positions(re, centres, (32, 32), subpixel=mode)
        b, _ = stitch_by_positions(im, centres, (32, 32), subpixel=mode)
        z, _ = stitch_by_positions(re + 1j * im, centres, (32, 32), subpixel=mode)
        assert a.dtype == np.float32
        np.testing.assert_allclose(z, a + 1j * b, atol=1e-5)


def test_subpixel_bilinear_half_pixel_is_neighbour_mean():
    # A half-pixel shift along x of a linear ramp: the mean of the two neighbours.
    N = 8
    patch = np.tile(np.arange(N, dtype=np.float64), (N, 1))[None]  # value = column
    canvas, _ = stitch_by_positions(patch, np.array([[4.4, 4.0]]), (8, 8), subpixel="bilinear")
    # Centre 4.4 rounds to 4, f = +0.4: q[j] = 0.6 p[j] + 0.4 p[j-1] = j - 0.4 (j >= 1).
    np.testing.assert_allclose(canvas[3, 1:], np.arange(1, N) - 0.4)
    assert canvas[3, 0] == 0.0  # border pixel repeated


def _phase_scrambled(seed=7, shuffle=False):
    N, stride, n_side = 16, 4, 5
    size = (n_side - 1) * stride + N
    obj = _object(size, size, seed=seed).astype(np.complex128)
    patches = _grid_patches(obj, N, stride, n_side)
    centres = _grid_centres(N, stride, n_side)
    rng = np.random.default_rng(seed)
    phases = rng.uniform(-np.pi, np.pi, size=len(patches))
    patches = patches * np.exp(1j * phases)[:, None, None]
    if shuffle:
        perm = rng.permutation(len(patches))
        patches, centres = patches[perm], centres[perm]
    return obj, patches, centres, size


def _err_up_to_global_phase(est, ref):
    g = np.vdot(est, ref)  # sum conj(est) * ref
    return _rel_err(est * np.exp(1j * np.angle(g)), ref)


@pytest.mark.parametrize("shuffle", [False, True])
def test_align_phase_recovers_object_up_to_global_phase(shuffle):
    obj, patches, centres, size = _phase_scrambled(shuffle=shuffle)
    plain, _ = stitch_by_positions(patches, centres, (size, size))
    aligned, _ = stitch_by_positions(patches, centres, (size, size), align_phase=True)
    assert aligned.dtype == np.complex128
    assert _err_up_to_global_phase(aligned, obj) < 1e-4
    assert _err_up_to_global_phase(plain, obj) > 0.3


def test_align_phase_keeps_consistent_patches():
    N, stride, n_side = 16, 4, 4
    size = (n_side - 1) * stride + N
    obj = _object(size, size, seed=8)
    patches = _grid_patches(obj, N, stride, n_side)
    canvas, _ = stitch_by_positions(
        patches, _grid_centres(N, stride, n_side), (size, size), align_phase=True
    )
    np.testing.assert_allclose(canvas, obj, atol=1e-5)  # zero mean rotation fixed


def test_align_phase_with_subpixel_and_crop():
    size, N = 96, 32
    obj = _smooth_object(size, seed=2)
    rng = np.random.default_rng(9)
    centres = rng.uniform(N // 2 + 4, size - N // 2 - 4, size=(60, 2))
    patches = _subpixel_patches(obj, centres, N)
    patches = patches * np.exp(1j * rng.uniform(-np.pi, np.pi, 60)).astype(np.complex64)[:, None, None]
    canvas, cov = stitch_by_positions(
        patches, centres, (size, size), crop=24, subpixel="fourier", align_phase=True
    )
    covered = cov >= 3
    assert covered.sum() > 1000
    assert _err_up_to_global_phase(canvas[covered], obj[covered]) < 2e-3


def test_align_phase_errors():
    patches = np.ones((2, 8, 8), dtype=np.float32)
    centres = np.array([[4.0, 4.0], [6.0, 4.0]])
    with pytest.raises(ValueError, match=r"^align_phase=True needs complex patches \(got dtype float32\)"):
        stitch_by_positions(patches, centres, (16, 16), align_phase=True)
    with pytest.raises(ValueError, match=r"^align_phase=1 must be true or false$"):
        stitch_by_positions(patches.astype(np.complex64), centres, (16, 16), align_phase=1)
    with pytest.raises(
        ValueError,
        match=r"^subpixel='cubic' is not allowed \(choose one of: 'none', 'fourier', 'bilinear'\)$",
    ):
        stitch_by_positions(patches, centres, (16, 16), subpixel="cubic")


def test_weights():
    patches = np.stack([np.full((4, 4), 1.0), np.full((4, 4), 3.0)]).astype(np.float32)
    centres = np.array([[2.0, 2.0], [5.0, 2.0]])
    # Per-patch weights: weighted mean in the overlap column 3: (1*1 + 3*3) / 4 = 2.5.
    canvas, cov = stitch_by_positions(patches, centres, (4, 8), weights=[1.0, 3.0])
    np.testing.assert_allclose(canvas[0], [1, 1, 1, 2.5, 3, 3, 3, 0])
    np.testing.assert_array_equal(cov[0], [1, 1, 1, 2, 1, 1, 1, 0])
    # Zero weight removes a patch's contribution (its pixels become 0).
    canvas, _ = stitch_by_positions(patches, centres, (4, 8), weights=[1.0, 0.0])
    np.testing.assert_allclose(canvas[0], [1, 1, 1, 1, 0, 0, 0, 0])
    # A shared (N, N) map: constant map == plain mean.
    plain, _ = stitch_by_positions(patches, centres, (4, 8))
    mapped, _ = stitch_by_positions(patches, centres, (4, 8), weights=np.full((4, 4), 2.0))
    np.testing.assert_allclose(mapped, plain)
    with pytest.raises(ValueError, match="^weights: must be finite and >= 0$"):
        stitch_by_positions(patches, centres, (4, 8), weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="^weights: expected"):
        stitch_by_positions(patches, centres, (4, 8), weights=[1.0, 2.0, 3.0])


def test_canvas_for_positions_negative_positions():
    N, stride, n_side = 16, 4, 4
    size = (n_side - 1) * stride + N
    obj = _object(size, size, seed=10)
    patches = _grid_patches(obj, N, stride, n_side)
    centres = _grid_centres(N, stride, n_side) - np.array([30.0, 45.0])  # all negative
    with pytest.raises(ValueError, match=r"^centres: 16 patch\(es\) fall off the canvas"):
        stitch_by_positions(patches, centres, (size, size))
    shape, origin = canvas_for_positions(centres, N)
    assert shape == (size, size) and origin == (30, 45)
    canvas, cov = stitch_by_positions(patches, centres + np.asarray(origin), shape)
    np.testing.assert_array_equal(canvas, obj)
    assert cov.min() >= 1
    # Margin and crop: tight around the cropped regions, plus the margin on every side.
    shape, origin = canvas_for_positions(centres, N, crop=stride, margin=3)
    assert shape == (n_side * stride + 6, n_side * stride + 6)
    canvas, cov = stitch_by_positions(
        patches, centres + np.asarray(origin), shape, crop=stride
    )
    assert cov[3:-3, 3:-3].min() == 1 and cov.sum() == (n_side * stride) ** 2
    # Fractional, mixed-sign positions: everything fits.
    rng = np.random.default_rng(11)
    c = rng.uniform(-50, 50, size=(30, 2))
    shape, origin = canvas_for_positions(c, N)
    _, cov = stitch_by_positions(np.ones((30, N, N), np.float32), c + origin, shape, subpixel="fourier")
    assert cov.any(axis=0)[[0, -1]].all() and cov.any(axis=1)[[0, -1]].all()  # tight


def test_canvas_for_positions_errors():
    with pytest.raises(ValueError, match="^centres: expected shape"):
        canvas_for_positions(np.zeros((0, 2)), 8)
    with pytest.raises(ValueError, match=r"^margin: got -1, allowed >= 0$"):
        canvas_for_positions(np.zeros((1, 2)), 8, margin=-1)
    with pytest.raises(ValueError, match=r"^crop: got 9, allowed in \[1, 8\]$"):
        canvas_for_positions(np.zeros((1, 2)), 8, crop=9)


def test_stitch_options_validation_messages():
    assert StitchOptions() == StitchOptions("positions", None, "none", False)
    cases = [
        (dict(mode="grid"),
         "StitchOptions.mode='grid' is not allowed (choose one of: 'positions', 'tiles')"),
        (dict(crop=0), "StitchOptions.crop=0 is out of range (allowed: 1..N)"),
        (dict(crop=2.5), "StitchOptions.crop=2.5 must be an integer"),
        (dict(subpixel="cubic"),
         "StitchOptions.subpixel='cubic' is not allowed "
         "(choose one of: 'none', 'fourier', 'bilinear')"),
        (dict(align_phase="yes"), "StitchOptions.align_phase='yes' must be true or false"),
        (dict(mode="tiles", subpixel="fourier"),
         "StitchOptions.subpixel='fourier' is not allowed with mode='tiles' "
         "(tiles sit on the integer scan grid; use mode='positions')"),
        (dict(mode="tiles", align_phase=True),
         "StitchOptions.align_phase=True is not allowed with mode='tiles' "
         "(tiles do not overlap; use mode='positions')"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(ValueError) as info:
            StitchOptions(**kwargs)
        assert str(info.value) == msg
    opts = StitchOptions(crop=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.crop = 5  # type: ignore[misc]


def test_stitch_tiles_and_positions_agree_on_grid():
    N, stride, n_side = 16, 4, 5
    size = (n_side - 1) * stride + N
    obj = _object(size, size, seed=12)
    patches = _grid_patches(obj, N, stride, n_side)
    centres = _grid_centres(N, stride, n_side)
    tiles, tcov = stitch(patches[:, None], centres[:, None], StitchOptions("tiles"),
                         grid=(n_side, stride))
    np.testing.assert_array_equal(tiles, stitch_grid_tiles(patches, n_side, stride))
    assert tcov.shape == tiles.shape and np.all(tcov == 1)
    image, cov = stitch(patches, centres, StitchOptions("positions", crop=stride))
    region = grid_region(N, stride, n_side)
    np.testing.assert_array_equal(clip_to_region(image, region), tiles)
    np.testing.assert_array_equal(clip_to_region(cov, region), tcov)
    # Whole patches, default canvas: object coordinates.
    image, cov = stitch(patches, centres, StitchOptions())
    np.testing.assert_array_equal(image, obj)
    # Negative positions: the default canvas is shifted to fit.
    image, cov = stitch(patches, centres - 40.0, StitchOptions())
    np.testing.assert_array_equal(image, obj)
    # Given canvas too small -> the existing error naming centres.
    with pytest.raises(ValueError, match=r"^centres: \d+ patch\(es\) fall off the canvas"):
        stitch(patches, centres, StitchOptions(), canvas_shape=(size - 1, size))


def test_stitch_refusals():
    N, stride, n_side = 16, 4, 3
    patches = np.zeros((n_side * n_side, N, N), dtype=np.complex64)
    centres = _grid_centres(N, stride, n_side)
    tiles = StitchOptions("tiles")
    with pytest.raises(ValueError, match=r"^stitch mode 'tiles' needs a regular grid scan"
                                         r".*no grid given\); use --stitch positions$"):
        stitch(patches, centres, tiles)
    with pytest.raises(ValueError, match=r"gridsize > 1.*use --stitch positions$"):
        stitch(patches.reshape(-1, 1, N, N)[:8].reshape(2, 4, N, N), centres[:8], tiles,
               grid=(n_side, stride))
    with pytest.raises(ValueError, match=r"not a row-major 3x3 grid with step 4\); use --stitch positions$"):
        stitch(patches, centres[::-1], tiles, grid=(n_side, stride))
    with pytest.raises(ValueError) as info:
        stitch(patches, centres, StitchOptions(crop=17))
    assert str(info.value) == "StitchOptions.crop=17 is out of range (allowed: 1..16)"
    with pytest.raises(ValueError, match=r"^StitchOptions.crop=2 does not match the grid stride 4"):
        stitch(patches, centres, StitchOptions("tiles", crop=2), grid=(n_side, stride))


# ------------------------------------------------------------------ probe weighting
def _weighted_case(seed=0):
    """Five random complex 8 x 8 patches at overlapping integer centres, a two-mode probe."""
    rng = np.random.default_rng(seed)
    patches = (rng.normal(size=(5, 1, 8, 8)) + 1j * rng.normal(size=(5, 1, 8, 8))).astype(np.complex64)
    centres = np.array([[6, 6], [8, 7], [10, 6], [7, 10], [9, 9]], dtype=np.float64)[:, None, :]
    probe = (rng.normal(size=(2, 8, 8)) + 1j * rng.normal(size=(2, 8, 8))).astype(np.complex64)
    return patches, centres, probe


def test_probe_weighting_is_the_probe_intensity_weighted_average():
    patches, centres, probe = _weighted_case()
    crop, shape = 6, (16, 16)
    got, coverage = stitch(patches, centres, StitchOptions(crop=crop), canvas_shape=shape,
                           weights=probe_weights(probe))
    # independently: sum(w * patch) / sum(w) with w = |P1|^2 + |P2|^2, both cropped to the
    # central 6 x 6 (from pixel 1), placed with top-left (y - 4 + 1, x - 4 + 1)
    w = (np.abs(probe[0]) ** 2 + np.abs(probe[1]) ** 2)[1:7, 1:7].astype(np.float64)
    num, den = np.zeros(shape, complex), np.zeros(shape)
    for p, (x, y) in zip(patches[:, 0], centres[:, 0].astype(int)):
        num[y - 3:y + 3, x - 3:x + 3] += w * p[1:7, 1:7]
        den[y - 3:y + 3, x - 3:x + 3] += w
    expected = np.where(den > 0, num / np.where(den > 0, den, 1), 0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert coverage.max() >= 3  # the patches do overlap
    uniform, _ = stitch(patches, centres, StitchOptions(crop=crop), canvas_shape=shape)
    assert np.abs(got - uniform).max() > 0.1  # the weighting changes the overlaps


def test_probe_weights_refusals_are_one_line():
    patches, centres, probe = _weighted_case()
    with pytest.raises(ValueError) as exc:
        stitch(patches.reshape(-1, 1, 8, 8)[:4], None, StitchOptions(mode="tiles"), grid=(2, 4),
               weights=probe_weights(probe))
    assert str(exc.value) == ("weights: not allowed with stitch mode 'tiles' (tiles do not "
                              "overlap; use mode='positions')")
    with pytest.raises(ValueError) as exc:
        probe_weights(np.zeros((8, 8), np.complex64))
    assert str(exc.value) == ("probe: its intensity must be finite and not all zero to weigh "
                              "the stitching")
