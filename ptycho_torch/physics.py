"""Differentiable far-field ptychography forward model, losses and overlap constraint.

Conventions (stated once for the whole project in ``ptycho/dataset.py`` and ``docs/design.md``):

* Exit wave ``psi = O_patch * P``; detector amplitude
  ``A = fftshift(|fft2(psi, norm="ortho")|)`` over the last two axes (unitary FFT, the
  shift is applied to the output only, so DC sits at index ``(N//2, N//2)``).
* Probe modes (a probe with a leading mode axis ``(K, N, N)``) add incoherently in
  intensity: ``A = sqrt(sum_k |F(O * P_k)|^2)``.
* Positions / offsets are ``(x, y) = (column, row)`` in object pixels, in that order.
  (The reference code stored offsets as ``(y, x)``; we do not.)

Everything is dtype-generic where cheap: complex64 in gives float32 out (the project
default), complex128 in gives float64 out (used by ``torch.autograd.gradcheck``).
All operations are batched tensor ops; there are no Python loops over patches or batch.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "illuminate",
    "far_field",
    "diffraction_intensity",
    "diffraction_amplitude",
    "FarFieldPtychography",
    "normalized_amplitude_mae",
    "poisson_nll",
    "poisson_nll_terms",
    "LOSSES",
    "get_loss",
    "round_offsets",
    "merge_patches",
    "extract_patches_from_region",
    "apply_overlap_constraint",
]


# --------------------------------------------------------------------------------------
# Forward model
# --------------------------------------------------------------------------------------


def illuminate(obj: Tensor, probe: Tensor, *, probe_modes: bool = False) -> Tensor:
    """Exit wave ``psi = obj * probe``.

    Args:
        obj: complex object patches, shape ``(..., N, N)`` (complex64 or complex128).
        probe: complex probe. With ``probe_modes=False`` it is broadcast against ``obj``
            by ordinary broadcasting, so ``(N, N)``, ``(1, 1, N, N)`` or ``(B, C, N, N)``
            all work. With ``probe_modes=True`` it has shape ``(K, N, N)`` (K incoherent
            modes) and a mode axis is inserted into ``obj``.

    Returns:
        complex tensor: ``(..., N, N)`` (broadcast shape) without modes, or
        ``(..., K, N, N)`` with modes (mode axis third from last).
    """
    if probe_modes:
        if probe.ndim != 3:
            raise ValueError(
                f"probe must have shape (K, N, N) when probe_modes=True, got {tuple(probe.shape)}"
            )
        return obj.unsqueeze(-3) * probe
    return obj * probe


def far_field(psi: Tensor) -> Tensor:
    """Unitary far-field propagation with DC moved to the centre.

    ``fftshift(fft2(psi, norm="ortho"), dim=(-2, -1))``.

    Args:
        psi: complex exit wave ``(..., N, N)``.

    Returns:
        complex tensor ``(..., N, N)`` of the same dtype; the zero frequency is at
        index ``(N//2, N//2)``. Energy is conserved (Parseval):
        ``sum |far_field(psi)|^2 == sum |psi|^2``.
    """
    return torch.fft.fftshift(torch.fft.fft2(psi, norm="ortho"), dim=(-2, -1))


def _safe_sqrt(x: Tensor) -> Tensor:
    """``sqrt(x)`` for ``x >= 0`` with a finite (zero) gradient where ``x == 0``.

    Uses the "double where" construction: the value is exactly ``sqrt(x)`` (no epsilon
    is added), and at ``x == 0`` the gradient is 0 instead of inf/NaN.
    """
    positive = x > 0
    safe = torch.where(positive, x, torch.ones_like(x))
    return torch.where(positive, torch.sqrt(safe), torch.zeros_like(x))


def diffraction_intensity(obj: Tensor, probe: Tensor, *, probe_modes: bool = False) -> Tensor:
    """Detector intensity ``|F(obj * probe)|^2`` (summed over modes if ``probe_modes``).

    Args:
        obj: complex ``(..., N, N)``.
        probe: see :func:`illuminate`.
        probe_modes: if True, ``probe`` is ``(K, N, N)`` and the K mode intensities are
            summed.

    Returns:
        real tensor ``(..., N, N)`` (float32 for complex64 input).
    """
    field = far_field(illuminate(obj, probe, probe_modes=probe_modes))
    intensity = field.real.square() + field.imag.square()
    if probe_modes:
        intensity = intensity.sum(dim=-3)
    return intensity


def diffraction_amplitude(obj: Tensor, probe: Tensor, *, probe_modes: bool = False) -> Tensor:
    """Detector amplitude ``A = |fftshift(fft2(obj * probe, norm="ortho"))|``.

    Args:
        obj: complex object patches ``(..., N, N)`` (complex64 -> float32 output,
            complex128 -> float64 output).
        probe: complex probe, broadcastable to ``obj`` (``(N, N)``, ``(B, C, N, N)``, ...)
            or, with ``probe_modes=True``, ``(K, N, N)`` incoherent modes.
        probe_modes: sum the K mode intensities incoherently:
            ``A = sqrt(sum_k |F(O * P_k)|^2)``.

    Returns:
        real amplitude ``(..., N, N)``. Without modes this is ``torch.abs`` of the field
        (whose gradient at 0 is 0); with modes the square root is exact in value and has
        a zero (finite) gradient at zero intensity.
    """
    if not probe_modes:
        return far_field(illuminate(obj, probe)).abs()
    return _safe_sqrt(diffraction_intensity(obj, probe, probe_modes=True))


class FarFieldPtychography(nn.Module):
    """Far-field ptychographic forward operator with a fixed probe.

    The probe is held as a (non-trainable) buffer so it follows ``.to(device)`` and is
    saved in ``state_dict``.

    Args:
        probe: complex probe (torch tensor or numpy array). Allowed shapes:
            ``(N, N)`` single mode; ``(K, N, N)`` K incoherent modes (K >= 1);
            ``(B, C, N, N)`` (or ``(1, 1, N, N)``) a single-mode probe broadcast against
            the object patches.
        dtype: complex dtype to store the probe in (default complex64).

    Raises:
        ValueError (message names ``probe``) for a non-complex dtype, a wrong number of
        dimensions, non-square or empty trailing dimensions, or non-finite values.
    """

    def __init__(self, probe, *, dtype: torch.dtype = torch.complex64):
        super().__init__()
        if dtype not in (torch.complex64, torch.complex128):
            raise ValueError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
        if isinstance(probe, np.ndarray):
            probe = torch.from_numpy(np.ascontiguousarray(probe))
        if not isinstance(probe, Tensor):
            raise ValueError(
                f"probe must be a complex torch.Tensor or numpy array, got {type(probe).__name__}"
            )
        if not probe.is_complex():
            raise ValueError(f"probe must be complex (complex64 or complex128), got dtype {probe.dtype}")
        if probe.ndim not in (2, 3, 4):
            raise ValueError(
                "probe must have shape (N, N), (K, N, N) modes or (B, C, N, N), "
                f"got {tuple(probe.shape)}"
            )
        n_rows, n_cols = probe.shape[-2:]
        if n_rows != n_cols or n_rows < 1 or any(s < 1 for s in probe.shape):
            raise ValueError(
                f"probe must be square and non-empty in its last two dims, got {tuple(probe.shape)}"
            )
        if not bool(torch.isfinite(torch.view_as_real(probe)).all()):
            raise ValueError("probe must contain only finite values, got NaN or inf")
        self.probe_modes: bool = probe.ndim == 3
        self.N: int = int(n_rows)
        self.register_buffer("probe", probe.detach().to(dtype).clone())

    def _check(self, obj_patches: Tensor) -> None:
        if not obj_patches.is_complex():
            raise ValueError(f"obj_patches must be complex, got dtype {obj_patches.dtype}")
        if obj_patches.ndim < 2 or tuple(obj_patches.shape[-2:]) != (self.N, self.N):
            raise ValueError(
                f"obj_patches must have shape (..., {self.N}, {self.N}), got {tuple(obj_patches.shape)}"
            )

    def forward(self, obj_patches: Tensor) -> Tensor:
        """Amplitude ``(..., N, N)`` real (float32 for complex64) of complex ``(..., N, N)`` patches."""
        self._check(obj_patches)
        return diffraction_amplitude(obj_patches, self.probe, probe_modes=self.probe_modes)

    def intensity(self, obj_patches: Tensor) -> Tensor:
        """Intensity ``|F(O*P)|^2`` ``(..., N, N)`` real (summed over probe modes)."""
        self._check(obj_patches)
        return diffraction_intensity(obj_patches, self.probe, probe_modes=self.probe_modes)

    def extra_repr(self) -> str:
        return f"N={self.N}, probe_shape={tuple(self.probe.shape)}, probe_modes={self.probe_modes}"


# --------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------


def _check_pair(pred: Tensor, obs: Tensor, fn: str) -> None:
    if pred.shape != obs.shape:
        raise ValueError(
            f"{fn}: pred_amp and obs_amp must have the same shape, got {tuple(pred.shape)} and "
            f"{tuple(obs.shape)}"
        )
    if pred.is_complex() or obs.is_complex():
        raise ValueError(f"{fn}: pred_amp and obs_amp must be real amplitudes, got complex input")


def _masked_mean(x: Tensor, mask: Optional[Tensor]) -> Tensor:
    """Mean of ``x`` over the measured pixels (``mask`` broadcast over the last two axes)."""
    if mask is None:
        return x.mean()
    w = mask.to(x.dtype).expand_as(x)
    return (x * w).sum() / w.sum().clamp_min(1.0)


def normalized_amplitude_mae(pred_amp: Tensor, obs_amp: Tensor, *, eps: float = 1e-12,
                             mask: Optional[Tensor] = None) -> Tensor:
    """Amplitude MAE normalized by the mean observed amplitude (reference default loss).

    ``mean(|pred_amp - obs_amp|) / max(mean(obs_amp).detach(), eps)``, both means taken
    over the measured pixels only when ``mask`` ((N, N), 1 = measured, 0 = bad pixel) is
    given: a bad pixel contributes nothing, it is not treated as a zero measurement.

    Args:
        pred_amp, obs_amp: real amplitudes of equal shape (e.g. ``(B, C, N, N)`` float32).
        eps: floor for the denominator, so an all-zero observation gives a finite (huge
            unless ``pred_amp`` is also zero) loss instead of NaN. No host/device sync.
        mask: optional (N, N) detector mask.

    Returns:
        0-dim real tensor. Exactly 0 at ``pred_amp == obs_amp``; the subgradient there is
        0 (``torch.abs`` has gradient 0 at 0).
    """
    _check_pair(pred_amp, obs_amp, "normalized_amplitude_mae")
    denom = _masked_mean(obs_amp.detach(), mask).clamp_min(eps)
    return _masked_mean((pred_amp - obs_amp).abs(), mask) / denom


def poisson_nll(
    pred_amp: Tensor,
    obs_amp: Tensor,
    photon_scale: float | Tensor = 1.0,
    *,
    eps: float = 1e-8,
    mask: Optional[Tensor] = None,
) -> Tensor:
    """Poisson negative log-likelihood of counts, normalized to be O(1).

    With ``s = photon_scale``: predicted counts ``I_p = (s * pred_amp)^2``, observed counts
    ``I_o = (s * obs_amp)^2`` and ``m = mean(I_o)`` (detached)::

        loss = mean(I_p - I_o * log(I_p + eps * m)) / m

    i.e. the Poisson NLL without the data-only ``log(I_o!)`` term, divided by the mean
    count. ``eps`` is *relative* to the mean observed intensity, so the gradient is
    independent of ``photon_scale``; ``photon_scale`` only shifts the value by the
    constant ``-log(s^2)``. The gradient w.r.t. ``I_p`` is ``(1 - I_o / (I_p + eps*m)) / (n*m)``,
    which vanishes (up to ``eps``) at ``pred_amp == obs_amp``, the minimum.

    Args:
        pred_amp, obs_amp: real non-negative amplitudes of equal shape.
        photon_scale: simulation scale ``s`` turning amplitudes into sqrt(counts).
        eps: relative floor inside the log (default 1e-8).
        mask: optional (N, N) detector mask (1 = measured); means run over measured pixels.

    Returns:
        0-dim real tensor.
    """
    _check_pair(pred_amp, obs_amp, "poisson_nll")
    s2 = photon_scale * photon_scale
    i_obs = (s2 * obs_amp.square()).detach()
    m = _masked_mean(i_obs, mask).clamp_min(torch.finfo(i_obs.dtype).tiny)
    return _masked_mean(poisson_nll_terms(pred_amp, obs_amp, photon_scale, m, eps=eps),
                        mask) / m


def poisson_nll_terms(pred_amp: Tensor, obs_amp: Tensor, photon_scale: float | Tensor,
                      mean_count: float | Tensor, *, eps: float = 1e-8) -> Tensor:
    """The per-pixel terms ``I_p - I_o * log(I_p + eps * m)`` of :func:`poisson_nll`.

    ``mean_count`` is ``m``, the mean observed count over the measured pixels of the whole
    set the loss is taken over (one batch for training, the whole scan for
    :func:`ptycho_torch.data_residual.data_residual`); ``poisson_nll`` is the masked mean of
    these terms divided by ``m``. The observed counts are detached.
    """
    s2 = photon_scale * photon_scale
    i_pred = s2 * pred_amp.square()
    i_obs = (s2 * obs_amp.square()).detach()
    return i_pred - i_obs * torch.log(i_pred + eps * mean_count)


LOSSES: Dict[str, Callable[..., Tensor]] = {
    "mae": normalized_amplitude_mae,
    "poisson": poisson_nll,
}


def get_loss(name: str) -> Callable[..., Tensor]:
    """Loss function by name (``"mae"`` or ``"poisson"``).

    Raises:
        ValueError: ``loss must be one of ['mae', 'poisson'], got 'nope'``.
    """
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}") from None


# --------------------------------------------------------------------------------------
# Real-space overlap constraint (gridsize > 1)
# --------------------------------------------------------------------------------------


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
    shifts = np.floor(p.astype(np.float64) + 0.5)
    if not np.isfinite(shifts).all():
        raise ValueError("overlap_region_size: positions hold non-finite values (allowed: "
                         "finite (x, y) offsets)")
    reach = int(np.abs(shifts).max())
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
