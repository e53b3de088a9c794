"""Tests for ptycho.stitching: exact reassembly of true patches, coverage, errors."""

import time

import numpy as np
import pytest

from ptycho.stitching import (
    clip_to_region,
    grid_region,
    stitch_by_positions,
    stitch_grid_tiles,
    stitch_patches,
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
    with pytest.raises(ValueError, match=r"centres: 1 patch\(es\) fall off the canvas \(16, 16\), first index 1"):
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


def test_stitch_patches_dispatch():
    N, stride, n_side = 16, 4, 3
    size = (n_side - 1) * stride + N
    obj = _object(size, size, seed=2)
    patches = _grid_patches(obj, N, stride, n_side)
    grid = stitch_patches(patches, n_side=n_side, stride=stride)
    np.testing.assert_array_equal(grid, stitch_grid_tiles(patches, n_side, stride))
    centres = _grid_centres(N, stride, n_side)
    canvas = stitch_patches(patches, centres=centres)  # inferred canvas (size, size)
    assert canvas.shape == (size, size)
    np.testing.assert_array_equal(canvas, obj)
    with pytest.raises(ValueError, match="not both"):
        stitch_patches(patches, n_side=n_side, stride=stride, centres=centres)
    with pytest.raises(ValueError, match="grid mode needs both n_side and stride"):
        stitch_patches(patches, n_side=n_side)


def test_positions_vectorized_speed():
    rng = np.random.default_rng(0)
    n, N, H = 2000, 32, 256
    patches = (rng.standard_normal((n, N, N)) + 1j * rng.standard_normal((n, N, N))).astype(
        np.complex64
    )
    centres = rng.uniform(N // 2, H - N // 2, size=(n, 2))
    t0 = time.perf_counter()
    canvas, cov = stitch_by_positions(patches, centres, (H, H))
    elapsed = time.perf_counter() - t0
    assert cov.sum() == n * N * N
    assert elapsed < 5.0  # typically ~0.02 s; generous bound so it never flakes
