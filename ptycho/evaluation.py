"""Reconstruction metrics against a known ground truth (numpy + scikit-image only).

The recipe follows the reference study's, but reports physically meaningful numbers that do
not depend on what far-field data cannot determine:

1. Alignment in the complex domain (:func:`ptycho.alignment.align_complex`): trim ``trim``
   (default 2) pixels from every side; with ``register=True``, move the reconstruction by
   the sub-pixel translation that registers it with the ground truth (for rows whose frame
   is not fixed: see below); remove the linear phase ramp of ``pred * conj(gt)``
   (amplitude-weighted) and then the global phase, the angle of the amplitude-weighted
   inner product ``sum(pred * conj(gt))``. What was removed is reported:
   ``phase_offset`` (rad), ``phase_ramp`` (rad/px, ``[x, y]``) and
   ``registration_shift_px`` (``[x, y]``, null when not registered).
2. Amplitude: the aligned ``|pred|`` scaled by ``mean(|gt|) / mean(|pred|)`` (global scale
   is not recoverable from far-field data without a calibrated probe).
3. Phase: the ground truth's ``np.angle(gt)`` less its own plane (least squares weighted
   by ``|gt|**2``, as the alignment weights ``pred * conj(gt)``), and the reconstruction's as
   that plus ``angle(pred_aligned) - angle(gt)`` wrapped into [-pi, pi), so neither phase
   wraps where the other does not.
4. Per channel (amplitude, phase): MAE, MSE, PSNR with the true data range, SSIM,
   FRC (crossings of 0.5, 1/7 and the half-bit curve in cycles/pixel; Hann-apodized, see
   :func:`ptycho.frc.frc_curve`; ``None`` with a ``">= 0.5"`` label when the curve never
   crosses), plus the legacy fixed-peak PSNR.

When to register (``register=True``): whenever the frame of the reconstruction is not the
ground truth's own, i.e. the positions the object was placed at were corrected or refined
(the study's lsqml route with position correction on the test scan, a Pty-chi run that
optimises positions, the position study's rows at given or corrected positions) or the
reference is foreign (``reference_levels.py --register``). A row reconstructed at the
positions the ground truth was simulated at is scored without: registering it would only
fit noise.

Sign ambiguity: a reconstruction of the complex conjugate (twin image, phase -> -phase)
is a known ambiguity. It is NOT flipped automatically; it shows up as poor phase metrics
and a negative ``phase_correlation`` (-1 for a weak phase object, |phase| < pi/2 about its
mean; a strong one wraps the difference and only reads poorly).

Coordinates: images are indexed ``[row, col]``; ``x`` is the column and ``y`` the row (both
centred on the image).
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

from ptycho.alignment import align_complex, centred_xy, check_pair, check_trim, fit_plane
from ptycho.metric_catalogue import METRIC_NAMES  # the keys of evaluate_reconstruction's metrics
from ptycho.frc import (
    THRESHOLD_KEYS,
    check_real_2d,
    frc_crossings,
    frc_curve,
    halfbit_threshold,
    ring_pixel_counts,
)

__all__ = [
    "remove_phase_plane",
    "align_for_metrics",
    "evaluate_reconstruction",
    "METRIC_NAMES",
]

# OpenCV's cv2.PSNR: 20*log10(R / (sqrt(mse) + DBL_EPSILON)).
_DBL_EPSILON = float(np.finfo(np.float64).eps)



# --------------------------------------------------------------------------- helpers
def _align(pred, gt, trim: int, register: bool):
    """The aligned images ``(amp_pred, amp_gt, phase_pred, phase_gt)``, the amplitude
    scale and the :class:`ptycho.alignment.Alignment`."""
    al = align_complex(pred, gt, trim=trim, register=register)
    amp_gt = np.abs(al.gt)
    amp_pred = np.abs(al.pred)
    mean_pred = float(amp_pred.mean())
    # An all-zero prediction cannot be rescaled; leave it as is (metrics show failure).
    scale = float(amp_gt.mean()) / mean_pred if mean_pred > 0 else 1.0
    phase_gt = np.angle(al.gt)
    ax, ay, c = fit_plane(phase_gt, amp_gt**2)   # the truth's own ramp, weighted as the fit
    x, y = centred_xy(phase_gt.shape)
    phase_gt = phase_gt - (ax * x + ay * y + c)
    diff = np.angle(al.pred) - np.angle(al.gt)
    phase_pred = phase_gt + ((diff + np.pi) % (2 * np.pi) - np.pi)   # wrapped into [-pi, pi)
    return amp_pred * scale, amp_gt, phase_pred, phase_gt, scale, al


# ------------------------------------------------------------------- public functions
def remove_phase_plane(phase, mask=None) -> np.ndarray:
    """Subtract the least-squares plane ``a*x + b*y + c`` from a phase image.

    Args:
        phase: (H, W) real array (radians).
        mask: optional (H, W) bool array; if given, the plane is fitted on ``mask``
            pixels only (at least 3) and subtracted everywhere.

    Returns:
        (H, W) array ``phase - plane``, dtype ``np.result_type(phase.dtype, np.float32)``
        (float32 in -> float32 out, float64 stays float64); the fit runs in float64.
        ``x`` is the column index and ``y`` the row index (centred for conditioning).
    """
    ph = check_real_2d(phase, "phase")
    h, w = ph.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    x -= (w - 1) / 2.0
    y -= (h - 1) / 2.0
    ph64 = ph.astype(np.float64)
    if mask is None:
        sel = np.ones((h, w), dtype=bool)
    else:
        sel = np.asarray(mask)
        if sel.shape != ph.shape or sel.dtype != np.bool_:
            raise ValueError(
                f"mask: expected a bool array of shape {ph.shape}, got "
                f"{sel.dtype} array of shape {sel.shape}"
            )
        if int(sel.sum()) < 3:
            raise ValueError(f"mask: selects {int(sel.sum())} pixels; need at least 3")
    design = np.stack([x[sel], y[sel], np.ones(int(sel.sum()))], axis=1)
    coef, *_ = np.linalg.lstsq(design, ph64[sel], rcond=None)
    plane = coef[0] * x + coef[1] * y + coef[2]
    return (ph64 - plane).astype(np.result_type(ph.dtype, np.float32))


def align_for_metrics(pred, gt, trim: int = 2, *, register: bool = False):
    """The aligned images the metrics are taken on (module docstring, steps 1-3).

    Args:
        pred: (H, W) complex array, the prediction (same shape as ``gt``).
        gt: (H, W) complex array, the ground truth (same shape as ``pred``).
        trim: pixels removed from every side before anything else.
        register: also remove the sub-pixel translation (rows whose frame is not fixed).

    Returns:
        ``(amp_pred, amp_gt, phase_pred, phase_gt)``, each (H - 2*trim, W - 2*trim)
        float64: ``amp_pred`` the aligned ``|pred|`` times ``mean(|gt|)/mean(|pred|)``
        (unscaled if ``mean(|pred|) == 0``), ``amp_gt = |gt|``, ``phase_gt = angle(gt)``
        and ``phase_pred = phase_gt + angle(pred_aligned * conj(gt))`` (no automatic sign
        flip).
    """
    p, g = check_pair(pred, gt)
    trim = check_trim(trim, g.shape)
    return _align(p, g, trim, register)[:4]


def _psnr(mse: float, data_range: float) -> float:
    if mse == 0.0:
        return math.inf
    if data_range <= 0.0:
        return math.nan
    return float(10.0 * np.log10(data_range**2 / mse))


def _psnr_legacy255(target: np.ndarray, pred: np.ndarray) -> float:
    """OpenCV cv2.PSNR(target, pred) on float32 copies: 20*log10(255/(rmse + DBL_EPS))."""
    d = target.astype(np.float32).astype(np.float64) - pred.astype(np.float32).astype(np.float64)
    rmse = math.sqrt(float(np.mean(d * d)))
    return float(20.0 * np.log10(255.0 / (rmse + _DBL_EPSILON)))


def _ssim(target: np.ndarray, pred: np.ndarray, data_range: float) -> float:
    if data_range <= 0.0:
        return math.nan
    return float(structural_similarity(target, pred, data_range=data_range))


def _channel_scores(pr: np.ndarray, tg: np.ndarray, phase: bool) -> dict:
    """MAE, MSE, PSNR, legacy PSNR, SSIM, the FRC curve and its crossings of one channel."""
    diff = tg - pr
    m_sq = float(np.mean(diff * diff))
    data_range = float(tg.max() - tg.min())
    if phase:
        ssim = _ssim((tg + np.pi) / (2 * np.pi), (pr + np.pi) / (2 * np.pi), 1.0)
    else:
        ssim = _ssim(tg, pr, data_range)
    freqs, frc = frc_curve(tg, pr)
    out = {"mae": float(np.mean(np.abs(diff))), "mse": m_sq, "psnr": _psnr(m_sq, data_range),
           "psnr_legacy255": _psnr_legacy255(tg, pr), "ssim": ssim, "freqs": freqs, "curve": frc}
    for key, (value, censored) in frc_crossings(freqs, frc, min(tg.shape)).items():
        out[key], out[f"{key}_censored"] = value, censored
    return out


def evaluate_reconstruction(pred, gt, *, trim: int = 2, register: bool = False) -> dict:
    """Score a complex reconstruction against the ground truth (module docstring's recipe).

    Args:
        pred: (H, W) complex array, finite, same shape as ``gt`` (e.g. the stitched
            reconstruction).
        gt: (H, W) complex array, finite, same shape as ``pred`` (e.g.
            ``clip_to_region(YY_ground_truth[..., 0], region)``).
        trim: border pixels removed on every side (reference: 2).
        register: remove the sub-pixel translation too (rows whose frame is not fixed:
            corrected or refined positions, or a foreign reference).

    Returns:
        dict with

        * ``metrics``: ``{name: [amplitude_value, phase_value]}`` (python floats):

          * ``mae``, ``mse`` -- of the aligned images (:func:`align_for_metrics`);
            amplitude in ground-truth units, phase in radians.
          * ``psnr`` -- ``10*log10(data_range**2 / mse)`` with
            ``data_range = max - min`` of the ground-truth image of that channel
            (amplitude; ``angle(gt)`` in radians); ``inf`` when mse == 0, NaN if the gt
            channel is constant.
          * ``psnr_legacy255`` -- LEGACY, for comparison with the reference's published
            numbers only: OpenCV's ``cv2.PSNR`` with its fixed peak 255,
            ``20*log10(255 / (sqrt(mse) + DBL_EPSILON))``, on float32 copies of the same
            aligned images. Not a physically meaningful PSNR (values ~60-80 dB); finite
            (~361 dB) at mse == 0.
          * ``ssim`` -- ``skimage.metrics.structural_similarity(gt, pred, data_range)``,
            default 7x7 window. Amplitude: data_range = range of aligned gt. Phase:
            both mapped by ``(phi + pi) / (2*pi)``, data_range 1.0. NaN if the gt
            amplitude is constant.
          * ``frc50``, ``frc_1_7``, ``frc_halfbit`` -- frequency (cycles/pixel, in
            [0, 0.5]) where the FRC of the aligned images first drops below 0.5, 1/7 and
            the half-bit curve (:func:`ptycho.frc.frc_crossings`); ``None`` when it never
            does (censored). The reference reported ring indices, not frequencies.

        * ``frc50_censored``, ``frc_1_7_censored``, ``frc_halfbit_censored``: ``[amplitude,
          phase]``, each ``None`` for a measured crossing or ``">= 0.5"`` (the last ring's
          frequency) when the curve never crossed.
        * ``phase_correlation``: Pearson correlation of the aligned phases (NaN if one
          is constant). Negative for the conjugate (twin) solution, not flipped here.
        * ``phase_strength_ratio``: ``std(phase_pred) / std(phase_gt)`` of the aligned
          phases (1 = right phase contrast; NaN if the gt phase is flat).
        * ``amplitude_scale``: the factor ``mean(|gt|)/mean(|pred|)`` applied to the
          prediction (after trimming); far from 1 means the absolute scale is off.
        * ``phase_offset`` (rad), ``phase_ramp`` (rad/px, ``[x, y]``),
          ``registration_shift_px`` (``[x, y]`` or None): what the alignment removed.
        * ``frc``: ``{"freqs", "amplitude", "phase", "halfbit"}`` lists: the full FRC
          curves and the half-bit threshold curve.

    Raises:
        ValueError: naming ``pred`` / ``gt`` if they are not (H, W) complex arrays of
            the same shape with finite values.
    """
    p, g = check_pair(pred, gt)
    trim = check_trim(trim, g.shape)
    amp_pred, amp_gt, ph_pred, ph_gt, scale, al = _align(p, g, trim, register)
    ch = [_channel_scores(amp_pred, amp_gt, False), _channel_scores(ph_pred, ph_gt, True)]
    sd_pred = float(ph_pred.std())
    sd_gt = float(ph_gt.std())
    if sd_pred > 0 and sd_gt > 0:
        corr = float(np.mean((ph_pred - ph_pred.mean()) * (ph_gt - ph_gt.mean())) / (sd_pred * sd_gt))
    else:
        corr = math.nan
    freqs = ch[0]["freqs"]
    halfbit = halfbit_threshold(ring_pixel_counts(min(amp_gt.shape)))
    return {
        "metrics": {key: [c[key] for c in ch] for key in METRIC_NAMES},
        **{f"{key}_censored": [c[f"{key}_censored"] for c in ch] for key in THRESHOLD_KEYS},
        "phase_correlation": corr,
        "phase_strength_ratio": float(sd_pred / sd_gt if sd_gt > 0 else math.nan),
        "amplitude_scale": float(scale),
        **al.removed(),
        "frc": {
            "freqs": [float(v) for v in freqs],
            "amplitude": [float(v) for v in ch[0]["curve"]],
            "phase": [float(v) for v in ch[1]["curve"]],
            "halfbit": [float(v) for v in halfbit],
        },
    }
