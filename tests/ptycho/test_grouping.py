"""Tests for ptycho.grouping: nearest-neighbour groups and their coordinates."""

import numpy as np
import pytest

from ptycho.grouping import group_centre_and_offsets, group_neighbours


def _grid(n_side=5, step=10.0, origin=16.0):
    i, j = np.meshgrid(np.arange(n_side), np.arange(n_side), indexing="ij")
    return np.stack([j.ravel() * step + origin, i.ravel() * step + origin], axis=1)


def test_gridsize_one_is_identity():
    c = _grid()
    g = group_neighbours(c, 1)
    assert g.dtype == np.int64 and g.shape == (25, 1)
    np.testing.assert_array_equal(g[:, 0], np.arange(25))


@pytest.mark.parametrize("seed", [0, 3])
def test_gridsize_two_on_grid_are_nearest_neighbours(seed):
    step = 10.0
    c = _grid(step=step)
    g = group_neighbours(c, 2, seed=seed)
    assert g.dtype == np.int64 and g.shape == (25, 4)
    for k, members in enumerate(g):
        assert k in members  # every position seeds its own group
        assert len(set(members.tolist())) == 4
        d = np.linalg.norm(c[members] - c[k], axis=1)
        assert np.all(d <= step * np.sqrt(2) + 1e-9)
        # Row-major member order: by y, then x.
        keys = [(c[m, 1], c[m, 0]) for m in members]
        assert keys == sorted(keys)
    # Deterministic across calls.
    np.testing.assert_array_equal(g, group_neighbours(c, 2, seed=seed))


def test_gridsize_three_interior_is_full_block():
    c = _grid()
    g = group_neighbours(c, 3)
    assert g.shape == (25, 9)
    # Centre of the 5x5 grid (index 12): its 8 nearest neighbours are the 3x3 block.
    np.testing.assert_array_equal(g[12], [6, 7, 8, 11, 12, 13, 16, 17, 18])


def test_irregular_scan_groups_are_nearest():
    rng = np.random.default_rng(0)
    c = rng.uniform(0, 100, size=(200, 2))
    g = group_neighbours(c, 2)
    for k in range(0, 200, 17):
        d_all = np.sort(np.linalg.norm(c - c[k], axis=1))
        d_grp = np.sort(np.linalg.norm(c[g[k]] - c[k], axis=1))
        np.testing.assert_allclose(d_grp, d_all[:4])


def test_centre_and_offsets_sum_back_exactly():
    c = _grid()
    g = group_neighbours(c, 2)
    offsets, nominal = group_centre_and_offsets(c, g)
    assert offsets.shape == nominal.shape == (25, 4, 1, 2)
    assert offsets.dtype == nominal.dtype == np.float32
    np.testing.assert_array_equal(offsets + nominal, c[g][:, :, None, :].astype(np.float32))
    np.testing.assert_array_equal(offsets[:, 0, 0], c[g].mean(axis=1).astype(np.float32))
    assert np.all(offsets == offsets[:, :1])  # same centre for every member
    np.testing.assert_allclose(nominal.sum(axis=1), 0.0, atol=1e-5)
    # Gridsize 1: offsets are the positions, nominal zeros.
    off1, nom1 = group_centre_and_offsets(c, group_neighbours(c, 1))
    np.testing.assert_array_equal(off1[:, 0, 0], c.astype(np.float32))
    assert np.all(nom1 == 0)


def test_refusals():
    c = _grid(n_side=1)
    with pytest.raises(ValueError) as info:
        group_neighbours(c, 0)
    assert str(info.value) == "group_neighbours: gridsize=0 is out of range (allowed: >= 1)"
    with pytest.raises(ValueError) as info:
        group_neighbours(_grid(n_side=1), 2)
    assert str(info.value) == (
        "group_neighbours: 1 scan positions are fewer than the C = gridsize**2 = 4 "
        "members of one group (gridsize=2)"
    )
    with pytest.raises(ValueError, match="^group_neighbours: gridsize=2.0 must be an integer$"):
        group_neighbours(c, 2.0)
    with pytest.raises(ValueError, match=r"^centres: expected shape \(n, 2\)"):
        group_neighbours(np.zeros((4, 3)), 2)
    with pytest.raises(ValueError, match=r"^groups: indices must be in \[0, 24\]"):
        group_centre_and_offsets(_grid(), np.array([[0, 25]]))
