"""Differentiable far-field ptychography forward model (the operator training and scoring use).

The losses are in :mod:`ptycho_torch.core.losses`, the gridsize > 1 overlap constraint in
:mod:`ptycho_torch.core.overlap`.

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

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "illuminate",
    "far_field",
    "diffraction_intensity",
    "diffraction_amplitude",
    "FarFieldPtychography",
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
