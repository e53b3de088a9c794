"""Neighbour groups of scan positions for gridsize > 1 (numpy / scipy only).

At gridsize ``g`` every sample fed to the network is a group of ``C = g*g`` nearby scan
positions. For a regular grid scan :func:`ptycho.geometry.raster.group_indices`
takes exact ``g x g`` blocks; for any scan (irregular, jittered, spiral) use
:func:`group_neighbours` here, then :func:`group_centre_and_offsets` for the
``coords_offsets`` / ``coords_nominal`` pair of :class:`ptycho.dataset.PtychoDataset`.

Positions are ``(x, y) = (column, row)`` in object pixels, as everywhere in the project.
"""
from __future__ import annotations

import math
from itertools import combinations

import numpy as np

__all__ = ["group_centre_and_offsets", "group_neighbours", "MAX_K_NEAREST",
           "MAX_GROUPS_PER_POSITION"]

# Candidates fetched per seed beyond the C needed, so exact distance ties at the C-th
# place are resolved by our own rule rather than by the k-d tree's internal order.
_EXTRA_CANDIDATES = 8
# Bounds of the optional draw (k_nearest: comb(64, 3) = 41664 choices at gridsize 2).
MAX_K_NEAREST = 64
MAX_GROUPS_PER_POSITION = 64
_MAX_CHOICES = 100_000


def _as_centres(centres, name: str = "centres") -> np.ndarray:
    c = np.asarray(centres, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 2:
        raise ValueError(f"{name}: expected shape (n, 2) of (x, y) positions, got {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError(f"{name}: contains NaN or inf; allowed finite (x, y) pixel values")
    return c


def _check_int_arg(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"group_neighbours: {name}={value!r} must be an integer")
    if not lo <= int(value) <= hi:
        raise ValueError(f"group_neighbours: {name}={int(value)} is out of range "
                         f"(allowed: {lo}..{hi})")
    return int(value)


def _ordered_candidates(c: np.ndarray, m: int, seed: int) -> np.ndarray:
    """(n, m) indices: each position itself first, then its ``m - 1`` nearest by distance,
    exact ties (to 1e-9 of the scan's extent) broken by a permutation seeded by ``seed``."""
    n = c.shape[0]
    from scipy.spatial import cKDTree  # imported here: keeps module import light

    q = min(n, m + _EXTRA_CANDIDATES)
    dist, idx = cKDTree(c).query(c, k=q)  # (n, q), sorted by distance
    idx = idx.astype(np.int64)
    # The query point itself is at distance 0; put it first even if duplicates exist.
    dist = np.where(idx == np.arange(n)[:, None], -1.0, dist)
    extent = float(np.ptp(c, axis=0).max()) or 1.0
    dq = np.round(dist / (extent * 1e-9))  # equal within 1e-9 of the extent -> a tie
    tie_key = np.random.default_rng(seed).permutation(n)[idx]
    # Lexicographic: quantised distance, then the seeded tie key.
    order = np.lexsort((tie_key, dq), axis=1)
    return np.take_along_axis(idx, order, axis=1)[:, :m]


def _draw_groups(cand: np.ndarray, C: int, per: int, seed: int) -> np.ndarray:
    """(n, per, C): per position (row of ``cand``, itself first) ``per`` groups of itself
    plus ``C - 1`` of its other candidates, distinct member sets (uniformly drawn without
    replacement from all ``comb(k, C - 1)`` choices; cycled when ``per`` exceeds them)."""
    n, k1 = cand.shape
    combos = np.asarray(list(combinations(range(1, k1), C - 1)), dtype=np.int64)
    n_comb = combos.shape[0]
    take = np.arange(per) % n_comb
    rng = np.random.default_rng((seed, 1))  # a stream apart from the tie-break permutation
    out = np.empty((n, per, C), dtype=np.int64)
    out[:, :, 0] = cand[:, :1]
    step = max(1, (1 << 22) // n_comb)  # bound the (rows, n_comb) random keys in memory
    for s in range(0, n, step):
        e = min(n, s + step)
        order = np.argsort(rng.random((e - s, n_comb)), axis=1)[:, take]  # (rows, per)
        cols = combos[order]                                               # (rows, per, C-1)
        out[s:e, :, 1:] = np.take_along_axis(cand[s:e, None, :], cols, axis=2)
    return out


def group_neighbours(centres, gridsize: int, *, seed: int = 0, k_nearest: int | None = None,
                     groups_per_position: int = 1) -> np.ndarray:
    """Group every scan position with its nearest neighbours.

    Args:
        centres: (n, 2) float, (x, y) scan positions.
        gridsize: int >= 1; groups have ``C = gridsize**2`` members.
        seed: int. Breaks exact distance ties (e.g. the four equidistant neighbours on a
            regular grid) reproducibly: among candidates at the same distance (to 1e-9
            of the scan's extent) the order is a fixed random permutation drawn from
            ``numpy.random.default_rng(seed)``; the draws below use the separate stream
            ``default_rng((seed, 1))``. Same inputs and seed -> same groups.
        k_nearest: int or None (gridsize > 1). The candidates of each position: its
            ``k_nearest`` nearest other positions (Euclidean, ties as above; at most
            ``n - 1``). None: ``C - 1``, so each group is the position and its ``C - 1``
            nearest. Allowed ``C - 1 <= k_nearest <= 64``.
        groups_per_position: int >= 1 (gridsize > 1). Groups drawn per position: each is
            the position itself plus ``C - 1`` of its ``k`` candidates, the member sets of
            one position's groups distinct (drawn uniformly without replacement from the
            ``comb(k, C - 1)`` choices, cycled when there are fewer). With the defaults
            (``k = C - 1``, one group) nothing is drawn.

    Returns:
        ``groups``: (n_groups, C) int64 indices into ``centres``. gridsize 1:
        ``arange(n)[:, None]``. Otherwise ``n_groups = n * groups_per_position``, in scan
        order (position ``i``'s groups are rows ``i * groups_per_position ...``). Within a
        group the members are ordered row-major by ``(y, x)`` (ties by index), like the
        ``g x g`` blocks of a grid scan; the seed position is therefore not necessarily
        first. Groups of different positions can share a member set (not deduplicated).

    Raises:
        ValueError: (one line) for ``gridsize < 1``, ``n < C``, bad ``centres``, or a
            ``k_nearest`` / ``groups_per_position`` out of range or given at gridsize 1.
    """
    if isinstance(gridsize, (bool, np.bool_)) or not isinstance(gridsize, (int, np.integer)):
        raise ValueError(f"group_neighbours: gridsize={gridsize!r} must be an integer")
    g = int(gridsize)
    if g < 1:
        raise ValueError(f"group_neighbours: gridsize={g} is out of range (allowed: >= 1)")
    c = _as_centres(centres)
    n = c.shape[0]
    C = g * g
    if n < C:
        raise ValueError(
            f"group_neighbours: {n} scan positions are fewer than the C = gridsize**2 = {C} "
            f"members of one group (gridsize={g})"
        )
    per = _check_int_arg("groups_per_position", groups_per_position, 1, MAX_GROUPS_PER_POSITION)
    k = C - 1 if k_nearest is None else _check_int_arg("k_nearest", k_nearest, C - 1,
                                                        MAX_K_NEAREST)
    if g == 1:
        if k_nearest is not None or per != 1:
            raise ValueError("group_neighbours: k_nearest and groups_per_position apply at "
                             "gridsize > 1 (allowed at gridsize 1: None and 1)")
        return np.arange(n, dtype=np.int64)[:, None]
    if math.comb(k, C - 1) > _MAX_CHOICES:
        raise ValueError(f"group_neighbours: k_nearest={k} gives comb({k}, {C - 1}) = "
                         f"{math.comb(k, C - 1)} choices per position at gridsize {g} "
                         f"(allowed: at most {_MAX_CHOICES})")
    cand = _ordered_candidates(c, min(k, n - 1) + 1, seed)
    if cand.shape[1] == C and per == 1:
        members = cand  # the position and its C - 1 nearest: no draw
    else:
        members = _draw_groups(cand, C, per, seed).reshape(n * per, C)
    # Row-major order within a group: by y, then x, then index.
    mc = c[members]
    inner = np.lexsort((members, mc[..., 0], mc[..., 1]), axis=1)
    return np.ascontiguousarray(np.take_along_axis(members, inner, axis=1))


def group_centre_and_offsets(centres, groups) -> tuple[np.ndarray, np.ndarray]:
    """Group centre and per-member offsets in the project's layout.

    Args:
        centres: (n, 2) (x, y) scan positions.
        groups: (g, C) int indices into ``centres`` (e.g. from :func:`group_neighbours`).

    Returns:
        ``(coords_offsets, coords_nominal)``, both float32 (g, C, 1, 2), (x, y):
        ``coords_offsets[i, j, 0]`` = the group centre (mean of its C member positions,
        the same for every j); ``coords_nominal[i, j, 0]`` = member position - group
        centre (zeros for C = 1). ``coords_offsets + coords_nominal`` gives the member
        positions (exactly when they are representable in float32 and close to the
        centre, e.g. scan grids; otherwise to float32 rounding).
    """
    c = _as_centres(centres)
    grp = np.asarray(groups)
    if grp.ndim != 2 or grp.shape[1] < 1:
        raise ValueError(f"groups: expected shape (n_groups, C), got {grp.shape}")
    if not np.issubdtype(grp.dtype, np.integer):
        raise ValueError(f"groups: expected integer indices, got dtype {grp.dtype}")
    if grp.size and (grp.min() < 0 or grp.max() >= c.shape[0]):
        raise ValueError(
            f"groups: indices must be in [0, {c.shape[0] - 1}], got range "
            f"[{int(grp.min())}, {int(grp.max())}]"
        )
    member = c[grp].astype(np.float32)  # (g, C, 2)
    centre = c[grp].mean(axis=1, keepdims=True).astype(np.float32)  # (g, 1, 2)
    nominal = member - centre  # float32: exact for nearby members (Sterbenz)
    offsets = np.broadcast_to(centre, member.shape)
    return (np.ascontiguousarray(offsets[:, :, None, :]),
            np.ascontiguousarray(nominal[:, :, None, :]))
