"""Real-space overlap constraint for gridsize > 1: merge a group's C patches, re-extract.

Offsets are ``(x, y)`` pixels from the group centre (``coords_nominal``), rounded half up
(:func:`round_offsets`). :func:`overlap_region_size` fixes the canvas once per scan so
training steps never synchronise with the host.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from ptycho.geometry.rounding import round_half_up

__all__ = ["round_offsets", "overlap_region_size", "merge_patches", "extract_patches_from_region",
           "apply_overlap_constraint"]


def _check_patches_positions(patches: Tensor, positions: Tensor) -> None:
    if patches.ndim != 4 or patches.shape[-1] != patches.shape[-2]:
        raise ValueError(f"patches must have shape (B, C, N, N), got {tuple(patches.shape)}")
    _check_positions(positions, patches.shape[0], patches.shape[1])


def _check_positions(positions: Tensor, B: int, C: int) -> None:
    if positions.ndim != 4 or tuple(positions.shape) != (B, C, 1, 2):
        raise ValueError(
            f"positions must have shape (B, C, 1, 2) = ({B}, {C}, 1, 2) of (x, y) offsets, "
            f"got {tuple(positions.shape)}"
        )
    if positions.is_complex() or not positions.dtype.is_floating_point:
        raise ValueError(f"positions must be a real floating tensor, got dtype {positions.dtype}")


def round_offsets(positions: Tensor) -> Tensor:
    """Round (x, y) offsets to integer pixels: ``floor(p + 0.5)`` as int64.

    Half-integers always round up (-1.5 -> -1, 1.5 -> 2), so offsets that share a
    fractional part keep their exact integer differences (``torch.round`` rounds half to
    even and would map both -0.5 and 0.5 to 0).

    Args:
        positions: real ``(..., 2)``.

    Returns:
        int64 ``(..., 2)``.
    """
    return torch.floor(positions.detach() + 0.5).to(torch.int64)


def _flat_patch_indices(shifts: Tensor, N: int, M: int) -> Tensor:
    """Flat canvas indices of every patch pixel.

    Args:
        shifts: int64 ``(B, C, 1, 2)`` integer (x, y) offsets from the canvas centre.
        N: patch size.
        M: canvas size.

    Returns:
        int64 ``(B, C*N*N)``: index into a ``(B, M*M)`` canvas; the patch centre
        ``(N//2, N//2)`` lands at canvas ``(row, col) = (M//2 + y, M//2 + x)``.
    """
    B, C = shifts.shape[:2]
    c0 = M // 2 - N // 2 + shifts[..., 0:1]  # (B, C, 1, 1) top-left column
    r0 = M // 2 - N // 2 + shifts[..., 1:2]  # (B, C, 1, 1) top-left row
    ar = torch.arange(N, device=shifts.device, dtype=torch.int64)
    idx = (r0 + ar.view(N, 1)) * M + (c0 + ar.view(1, N))  # (B, C, N, N)
    return idx.reshape(B, C * N * N)


def _check_fits(shifts: Tensor, N: int, M: int, field: str) -> None:
    lo = M // 2 - N // 2 + int(shifts.min())
    hi = M // 2 - N // 2 + int(shifts.max()) + N
    if lo < 0 or hi > M:
        need = N + 2 * int(shifts.abs().max())
        raise ValueError(
            f"{field} = {M} is too small for patches of size {N} at rounded offsets up to "
            f"{int(shifts.abs().max())} px; need at least {need}"
        )


def overlap_region_size(positions, N: int) -> int:
    """The canvas size M of :func:`merge_patches` for a whole scan, computed once on the
    host: ``N + 2 * max|rounded offset|`` over ``positions`` (a NumPy array or tensor of
    (x, y) offsets, e.g. the scan's ``coords_nominal``), or 0 when every rounded offset is
    zero (gridsize 1 / no geometry: :func:`apply_overlap_constraint` is the identity)."""
    p = positions.detach().cpu().numpy() if isinstance(positions, Tensor) else np.asarray(positions)
    if p.size == 0:
        return 0
    p = p.astype(np.float64)
    if not np.isfinite(p).all():
        raise ValueError("overlap_region_size: positions hold non-finite values (allowed: "
                         "finite (x, y) offsets)")
    reach = int(np.abs(round_half_up(p)).max())
    return 0 if reach == 0 else int(N) + 2 * reach


def merge_patches(
    patches: Tensor, positions: Tensor, region_size: Optional[int] = None, *,
    check: bool = True,
) -> Tuple[Tensor, Tensor]:
    """Place C patches of each group on a common canvas and average the overlaps.

    Args:
        patches: ``(B, C, N, N)`` complex (or real) patches.
        positions: ``(B, C, 1, 2)`` float (x, y) offsets of each patch centre from the
            group centre, in pixels. Sub-pixel offsets are rounded with
            :func:`round_offsets` (integer shifts only).
        region_size: canvas size M. ``None`` computes ``M = N + 2 * max|rounded offset|``
            from the data (one host sync). A given M must hold every patch.
        check: with a given ``region_size``, verify that every patch fits (a host sync);
            ``False`` when M came from :func:`overlap_region_size` of the same scan.

    Returns:
        ``(region, weight)``: ``region`` ``(B, M, M)`` same dtype as ``patches``, the sum of
        the placed patches divided by ``max(count, 1)``; ``weight`` ``(B, M, M)`` real
        (float32 for complex64) coverage count. Patch centre ``(N//2, N//2)`` lands at
        canvas ``(row, col) = (M//2 + y, M//2 + x)``. Differentiable w.r.t. ``patches``
        (``scatter_add``).
    """
    _check_patches_positions(patches, positions)
    B, C, N, _ = patches.shape
    shifts = round_offsets(positions)
    if region_size is None:
        M = N + 2 * int(shifts.abs().max()) if shifts.numel() else N
    else:
        M = int(region_size)
        if check:
            _check_fits(shifts, N, M, "region_size")
    idx = _flat_patch_indices(shifts, N, M)
    real_dtype = patches.real.dtype if patches.is_complex() else patches.dtype
    total = patches.new_zeros(B, M * M).scatter_add(1, idx, patches.reshape(B, C * N * N))
    count = torch.zeros(B, M * M, dtype=real_dtype, device=patches.device).scatter_add(
        1, idx, torch.ones(B, C * N * N, dtype=real_dtype, device=patches.device)
    )
    region = total / count.clamp_min(1)
    return region.reshape(B, M, M), count.reshape(B, M, M)


def extract_patches_from_region(region: Tensor, positions: Tensor, N: int, *,
                                check: bool = True) -> Tensor:
    """Cut C patches of size N from each group's canvas (the inverse of the placement).

    Args:
        region: ``(B, M, M)`` complex (or real) canvas, as returned by :func:`merge_patches`.
        positions: ``(B, C, 1, 2)`` float (x, y) offsets from the canvas centre, rounded
            like in :func:`merge_patches`.
        N: patch size.
        check: verify that every patch fits in the canvas (a host sync); ``False`` when
            the canvas came from :func:`overlap_region_size` of the same scan.

    Returns:
        ``(B, C, N, N)`` same dtype as ``region``; differentiable (``gather``).
    """
    if region.ndim != 3 or region.shape[-1] != region.shape[-2]:
        raise ValueError(f"region must have shape (B, M, M), got {tuple(region.shape)}")
    B, M, _ = region.shape
    if positions.ndim != 4 or positions.shape[0] != B:
        raise ValueError(
            f"positions must have shape (B, C, 1, 2) with B = {B}, got {tuple(positions.shape)}"
        )
    C = positions.shape[1]
    _check_positions(positions, B, C)
    N = int(N)
    if N < 1:
        raise ValueError(f"N must be a positive patch size, got {N}")
    shifts = round_offsets(positions)
    if check:
        _check_fits(shifts, N, M, "region size M")
    idx = _flat_patch_indices(shifts, N, M)
    return region.reshape(B, M * M).gather(1, idx).reshape(B, C, N, N)


def apply_overlap_constraint(patches: Tensor, positions: Tensor, weight: float = 1.0, *,
                             region_size: Optional[int] = None) -> Tensor:
    """Real-space overlap constraint: merge the C patches of a group, then re-extract.

    Each output patch is the average of all input patches covering that pixel, so the
    output is self-consistent (applying the constraint twice equals applying it once)
    and patches cut from one object at the given offsets are returned unchanged.
    ``weight`` in [0, 1] relaxes it: the output is ``(1 - weight) * patches + weight *
    merged`` (1: the hard constraint above; 0: the patches unchanged).

    Args:
        patches: ``(B, C, N, N)`` complex (or real) patches.
        positions: ``(B, C, 1, 2)`` float (x, y) offsets of the patch centres from the
            group centre (``coords_nominal`` / ``coords_relative``); rounded to integer
            pixels (see :func:`round_offsets`).
        weight: share of the merged patches in the output, 0..1.
        region_size: :func:`overlap_region_size` of the whole scan these positions come
            from, computed once per scan: then no step synchronises with the host (0: all
            offsets are zero, the input is returned). ``None``: decided per batch from the
            data (two host syncs per call).

    Returns:
        ``(B, C, N, N)`` same dtype. If ``C == 1`` or all rounded offsets are zero the
        input tensor itself is returned (zero offsets mean gridsize 1 / no geometry, so
        no constraint is applied).
    """
    _check_patches_positions(patches, positions)
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"apply_overlap_constraint: weight={weight!r} is out of range "
                         "(allowed: 0..1)")
    if patches.shape[1] == 1 or weight == 0.0 or region_size == 0:
        return patches
    if region_size is None:
        if not bool(round_offsets(positions).any()):
            return patches
        region, _ = merge_patches(patches, positions)
    else:
        region, _ = merge_patches(patches, positions, int(region_size), check=False)
    merged = extract_patches_from_region(region, positions, patches.shape[-1],
                                         check=region_size is None)
    return merged if weight == 1.0 else torch.lerp(patches, merged, weight)
