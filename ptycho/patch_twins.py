"""How much of each predicted patch's phase follows the true patch, and how much its twin.

A far-field pattern keeps ``|F psi|^2``, which the exit wave ``psi(r)`` and its conjugate
twin ``conj(psi(-r))`` share. A network that maps one pattern to one object patch can
return the true patch, its twin, or a mixture of the two; stitched, such patches weaken
the object's phase (a low phase-strength ratio) where the amplitude barely suffers. This
module scores that per patch, against known truth:

* weights ``w = |P|^2 / sum |P|^2`` (the probe's intensity: where the pattern saw the
  object);
* each phase map is the angle of the patch times ``exp(-i angle(sum w z))``, i.e. with its
  weighted mean phase removed (a patch's constant phase is not measured);
* the twin of a true patch is ``conj(O)`` mirrored through the patch centre, pixel ``N/2``
  in each axis (index ``i -> (N - i) mod N``, the probe's centre in this project);
* ``direct`` and ``twin`` are the ``w``-weighted Pearson correlations of the predicted
  phase with the true phase and with the twin's phase.

A patch whose ``twin`` exceeds its ``direct`` is counted in ``twin_fraction``.

Whether the data could tell them apart is :func:`twin_data_residuals`: the misfit to the
measured pattern of each predicted patch and of its own twin, through the forward model.
An object patch and its twin give the same pattern only under a probe equal to its own
twin (``P(r) = conj(P(-r))``).
"""
from __future__ import annotations

import numpy as np

from ptycho.forward import diffraction_amplitude


def twin_of(patches: np.ndarray) -> np.ndarray:
    """The conjugate twins of complex ``(..., N, N)`` patches about pixel ``(N/2, N/2)``."""
    z = np.asarray(patches)
    mirrored = np.roll(z[..., ::-1, ::-1], (1, 1), axis=(-2, -1))
    return np.conj(mirrored)


def _phase(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Phases of ``(n, N, N)`` patches with each one's ``w``-weighted mean phase removed."""
    mean = np.angle(np.sum(z * w, axis=(-2, -1), keepdims=True))
    return np.angle(z * np.exp(-1j * mean))


def _weighted_corr(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``w``-weighted Pearson correlation over the last two axes (NaN for a flat map)."""
    a = a - np.sum(a * w, axis=(-2, -1), keepdims=True)
    b = b - np.sum(b * w, axis=(-2, -1), keepdims=True)
    cov = np.sum(a * b * w, axis=(-2, -1))
    var = np.sum(a * a * w, axis=(-2, -1)) * np.sum(b * b * w, axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, cov / np.sqrt(np.where(var > 0, var, 1.0)), np.nan)


def patch_twin_scores(pred: np.ndarray, true: np.ndarray, probe: np.ndarray) -> dict:
    """Per-patch ``direct`` and ``twin`` phase correlations of predicted complex patches
    ``pred`` against ``true`` (both ``(n, N, N)``), weighted by the probe's intensity
    (``probe`` ``(N, N)``, or ``(modes, N, N)``: intensities summed), and their summary:
    ``median_direct``, ``median_twin`` and ``twin_fraction`` (patches with
    ``twin > direct``, among those where both are defined)."""
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.ndim != 3 or pred.shape != true.shape or pred.shape[-1] != pred.shape[-2]:
        raise ValueError(f"pred and true must be the same (n, N, N) stacks of square patches "
                         f"(got {pred.shape} and {true.shape})")
    intensity = np.abs(np.asarray(probe)) ** 2
    if intensity.ndim == 3:
        intensity = intensity.sum(axis=0)
    if intensity.shape != pred.shape[-2:] or not np.sum(intensity) > 0:
        raise ValueError(f"probe must be a non-zero {pred.shape[-2:]} field "
                         f"(got shape {np.shape(probe)})")
    w = intensity / np.sum(intensity)
    p = _phase(pred, w)
    direct = _weighted_corr(p, _phase(true, w), w)
    twin = _weighted_corr(p, _phase(twin_of(true), w), w)
    ok = np.isfinite(direct) & np.isfinite(twin)
    return {"direct": direct, "twin": twin,
            "median_direct": float(np.median(direct[ok])) if ok.any() else float("nan"),
            "median_twin": float(np.median(twin[ok])) if ok.any() else float("nan"),
            "twin_fraction": float(np.mean(twin[ok] > direct[ok])) if ok.any() else float("nan")}


def data_residuals(patches: np.ndarray, measured: np.ndarray, probe: np.ndarray,
                   valid: np.ndarray | None = None) -> np.ndarray:
    """Per-patch misfit ``||s a - m|| / ||m||`` of the far-field amplitudes ``a`` that the
    object ``patches`` (n, N, N) give under ``probe``
    (:func:`ptycho.forward.diffraction_amplitude`) to the ``measured`` amplitudes ``m``
    (n, N, N), ``s`` each patch's least-squares scale (far-field data do not fix the
    object's scale); over the pixels where ``valid`` (N, N) is True, all by default."""
    a = diffraction_amplitude(patches, probe).astype(np.float64)
    m = np.asarray(measured, dtype=np.float64)
    if a.shape != m.shape:
        raise ValueError(f"measured must have the patches' shape {a.shape} (got {m.shape})")
    if valid is not None:
        a, m = a * valid, m * valid
    s = np.sum(a * m, axis=(-2, -1)) / np.maximum(np.sum(a * a, axis=(-2, -1)), 1e-300)
    err = np.sqrt(np.sum((s[:, None, None] * a - m) ** 2, axis=(-2, -1)))
    return err / np.maximum(np.sqrt(np.sum(m * m, axis=(-2, -1))), 1e-300)


def twin_data_residuals(pred: np.ndarray, measured: np.ndarray, probe: np.ndarray,
                        valid: np.ndarray | None = None) -> dict:
    """:func:`data_residuals` of the predicted patches and of their twins, their medians and
    ``twin_fits_better``: the fraction of patches whose twin fits the measured pattern
    better than the patch itself."""
    own = data_residuals(pred, measured, probe, valid)
    twin = data_residuals(twin_of(pred), measured, probe, valid)
    return {"residual": own, "twin_residual": twin,
            "median_residual": float(np.median(own)), "median_twin_residual":
            float(np.median(twin)), "twin_fits_better": float(np.mean(twin < own))}
