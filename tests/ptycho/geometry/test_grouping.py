"""Tests for ptycho.geometry.grouping: nearest-neighbour groups and their coordinates."""

import numpy as np
import pytest

from ptycho.geometry.grouping import group_centre_and_offsets, group_neighbours


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


# ------------------------------------------------ several groups per position (k nearest)
def _scan(n=60, seed=1):
    """A jittered raster (exact distance ties broken by the jitter) of ``n`` positions."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    i, j = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    c = np.stack([j.ravel() * 5.0, i.ravel() * 5.0], axis=1)[:n]
    return c + rng.uniform(-1.0, 1.0, c.shape)


def _nearest_by_brute_force(c, i, k):
    """Indices of the ``k`` positions nearest to ``c[i]`` (itself excluded), from all
    pairwise distances (no ties in a jittered scan)."""
    d = np.linalg.norm(c - c[i], axis=1)
    d[i] = np.inf
    return set(np.argsort(d)[:k].tolist())


def test_several_groups_per_position_hold_their_seed_and_k_nearest_members():
    c, k, per = _scan(), 6, 7
    g = group_neighbours(c, 2, k_nearest=k, groups_per_position=per, seed=4)
    assert g.dtype == np.int64 and g.shape == (len(c) * per, 4)
    for i in range(len(c)):
        mine = g[i * per:(i + 1) * per]               # position i's groups, in scan order
        near = _nearest_by_brute_force(c, i, k)
        sets = {frozenset(row.tolist()) for row in mine}
        assert len(sets) == per                       # distinct member sets (comb(6, 3) = 20)
        for row in mine:
            assert i in row and len(set(row.tolist())) == 4
            assert set(row.tolist()) - {i} <= near   # the others are among its k nearest
            order = np.lexsort((row, c[row, 0], c[row, 1]))
            np.testing.assert_array_equal(order, np.arange(4))  # row-major, as before


def test_the_draw_is_seeded_and_reaches_every_choice():
    c = _scan()
    a = group_neighbours(c, 2, k_nearest=6, groups_per_position=7, seed=4)
    np.testing.assert_array_equal(a, group_neighbours(c, 2, k_nearest=6, groups_per_position=7,
                                                      seed=4))
    assert not np.array_equal(a, group_neighbours(c, 2, k_nearest=6, groups_per_position=7, seed=5))
    # all comb(6, 3) = 20 groups of a position when 20 are asked for
    g = group_neighbours(c, 2, k_nearest=6, groups_per_position=20)
    assert len({frozenset(r.tolist()) for r in g[:20]}) == 20


def _today(c, seed):
    """The one group per position of the default: the position and its C-1 = 3 nearest,
    exact distance ties ordered by ``default_rng(seed).permutation(n)``, members row-major;
    computed from all pairwise distances."""
    n = len(c)
    key = np.random.default_rng(seed).permutation(n)
    extent = np.ptp(c, axis=0).max()
    out = []
    for i in range(n):
        d = np.round(np.linalg.norm(c - c[i], axis=1) / (extent * 1e-9))
        d[i] = -1
        members = np.lexsort((key, d))[:4]
        out.append(members[np.lexsort((members, c[members, 0], c[members, 1]))])
    return np.asarray(out)


@pytest.mark.parametrize("seed", [0, 3])
def test_defaults_keep_one_group_of_the_nearest_per_position(seed):
    for c in (_grid(n_side=6), _scan(45, seed=2)):   # exact ties on the grid, none jittered
        expected = _today(c, seed)
        np.testing.assert_array_equal(group_neighbours(c, 2, seed=seed), expected)
        np.testing.assert_array_equal(
            group_neighbours(c, 2, seed=seed, k_nearest=3, groups_per_position=1), expected)


@pytest.mark.parametrize("kwargs,message", [
    (dict(gridsize=1, k_nearest=6), "group_neighbours: k_nearest and groups_per_position apply "
     "at gridsize > 1 (allowed at gridsize 1: None and 1)"),
    (dict(gridsize=2, k_nearest=2), "group_neighbours: k_nearest=2 is out of range (allowed: 3..64)"),
    (dict(gridsize=2, groups_per_position=0),
     "group_neighbours: groups_per_position=0 is out of range (allowed: 1..64)"),
    (dict(gridsize=3, k_nearest=40), "group_neighbours: k_nearest=40 gives comb(40, 8) = 76904685 "
     "choices per position at gridsize 3 (allowed: at most 100000)"),
])
def test_draw_refusals_are_one_line(kwargs, message):
    with pytest.raises(ValueError) as exc:
        group_neighbours(_scan(), **kwargs)
    assert str(exc.value) == message
