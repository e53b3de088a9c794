"""Neighbour groups of scan positions for gridsize > 1 (numpy / scipy only).

At gridsize ``g`` every sample fed to the network is a group of ``C = g*g`` nearby scan
positions. For a regular grid scan :func:`ptycho.geometry.raster.group_indices`
takes exact ``g x g`` blocks; for any scan (irregular, jittered, spiral) use
:func:`group_neighbours` here, then :func:`group_centre_and_offsets` for the
``coords_offsets`` / ``coords_nominal`` pair of :class:`ptycho.dataset.PtychoDataset`.

Positions are ``(x, y) = (column, row)`` in object pixels, as everywhere in the project.
"""
from __future__ import annotations

import numpy as np

__all__ = ["group_centre_and_offsets", "group_neighbours"]

# Candidates fetched per seed beyond the C needed, so exact distance ties at the C-th
# place are resolved by our own rule rather than by the k-d tree's internal order.
_EXTRA_CANDIDATES = 8


def _as_centres(centres, name: str = "centres") -> np.ndarray:
    c = np.asarray(centres, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 2:
        raise ValueError(f"{name}: expected shape (n, 2) of (x, y) positions, got {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError(f"{name}: contains NaN or inf; allowed finite (x, y) pixel values")
    return c


def group_neighbours(centres, gridsize: int, *, seed: int = 0) -> np.ndarray:
    """Group every scan position with its nearest neighbours.

    Args:
        centres: (n, 2) float, (x, y) scan positions.
        gridsize: int >= 1; groups have ``C = gridsize**2`` members.
        seed: int. Breaks exact distance ties (e.g. the four equidistant neighbours on a
            regular grid) reproducibly: among candidates at the same distance (to 1e-9
            of the scan's extent) the order is a fixed random permutation drawn from
            ``numpy.random.default_rng(seed)``. Same inputs and seed -> same groups.

    Returns:
        ``groups``: (n_groups, C) int64 indices into ``centres``. gridsize 1:
        ``arange(n)[:, None]``. Otherwise one group per scan position (``n_groups = n``,
        in scan order): the position itself plus its ``C - 1`` nearest neighbours
        (Euclidean, :class:`scipy.spatial.cKDTree`). Within a group the members are
        ordered row-major by ``(y, x)`` (ties by index), like the ``g x g`` blocks of a
        grid scan; the seed position is therefore not necessarily first. Two seeds can
        give the same member set (groups are not deduplicated).

    Raises:
        ValueError: (one line) for ``gridsize < 1``, ``n < C`` or bad ``centres``.
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
    if g == 1:
        return np.arange(n, dtype=np.int64)[:, None]

    from scipy.spatial import cKDTree  # imported here: keeps module import light

    m = min(n, C + _EXTRA_CANDIDATES)
    dist, idx = cKDTree(c).query(c, k=m)  # (n, m), sorted by distance
    idx = idx.astype(np.int64)
    # The query point itself is at distance 0; put it first even if duplicates exist.
    is_self = idx == np.arange(n)[:, None]
    dist = np.where(is_self, -1.0, dist)
    extent = float(np.ptp(c, axis=0).max()) or 1.0
    dq = np.round(dist / (extent * 1e-9))  # equal within 1e-9 of the extent -> a tie
    tie_key = np.random.default_rng(seed).permutation(n)[idx]
    # Lexicographic: quantised distance, then the seeded tie key.
    order = np.lexsort((tie_key, dq), axis=1)
    members = np.take_along_axis(idx, order, axis=1)[:, :C]
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
