"""Reconstruction metrics against a known ground truth (numpy + scikit-image only).

The recipe follows the reference study's, but reports physically meaningful numbers:


1. Trim ``trim`` (default 2) pixels from every side of both complex images.
2. Amplitude: scale the predicted amplitude by ``mean(|gt|) / mean(|pred|)`` (global
   scale is not recoverable from far-field data without a calibrated probe).
3. Phase: ``np.angle`` of each image, then fit and remove a plane ``a*x + b*y + c``
   from each separately (a constant offset and a linear ramp, i.e. a real-space shift
   of the diffraction pattern, are not determined by the data). Phases are NOT
   unwrapped: a ramp that wraps around +-pi is not removed by the fit.
4. Per channel (amplitude, phase): MAE, MSE, PSNR with the true data range, SSIM,
   FRC (crossings of 0.5 and 1/7 in cycles/pixel; Hann-apodized, see
   :func:`frc_curve`), plus the legacy fixed-peak PSNR.

Sign ambiguity: a reconstruction of the complex conjugate (twin image, phase -> -phase)
is a known ambiguity. It is NOT flipped automatically; it shows up as a negative
``phase_correlation`` (near -1 for a clean twin) and poor phase metrics.

Coordinates: images are indexed ``[row, col]``; in the plane fit ``x`` is the column and
``y`` the row (both centred on the image).
"""

from __future__ import annotations

import math

import numpy as np

from ptycho.frc import check_real_2d, frc_curve, frc_threshold_crossing

__all__ = [
    "remove_phase_plane",
    "align_for_metrics",
    "evaluate_reconstruction",
    "METRIC_NAMES",
]

# OpenCV's cv2.PSNR: 20*log10(R / (sqrt(mse) + DBL_EPSILON)).
_DBL_EPSILON = float(np.finfo(np.float64).eps)

# skimage structural_similarity default window (7 x 7) needs images at least this big.
_MIN_SIDE = 7

# Keys of evaluate_reconstruction(...)["metrics"], in order.
METRIC_NAMES = ("mae", "mse", "psnr", "psnr_legacy255", "ssim", "frc50", "frc_1_7")


# --------------------------------------------------------------------------- helpers
def _check_pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    """Validate two complex (or real) 2-D images of equal shape; return complex128."""
    arrs = []
    for name, a in (("pred", pred), ("gt", gt)):
        arr = np.asarray(a)
        if arr.ndim != 2:
            raise ValueError(
                f"{name}: expected a 2-D complex image (H, W), got shape {arr.shape}"
            )
        if not (np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype, np.bool_)):
            raise ValueError(f"{name}: expected a numeric (complex) image, got dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: contains NaN or inf; allowed finite values only")
        arrs.append(arr.astype(np.complex128))
    p, g = arrs
    if p.shape != g.shape:
        raise ValueError(f"pred: shape {p.shape} does not match gt shape {g.shape}")
    return p, g


def _check_trim(trim, shape) -> int:
    if isinstance(trim, (bool, np.bool_)) or not isinstance(trim, (int, np.integer)) or trim < 0:
        raise ValueError(f"trim: got {trim!r}, allowed an integer >= 0")
    trim = int(trim)
    h, w = shape
    if h - 2 * trim < _MIN_SIDE or w - 2 * trim < _MIN_SIDE:
        raise ValueError(
            f"gt: shape {shape} is too small for trim={trim}; need H, W >= "
            f"2*trim + {_MIN_SIDE} = {2 * trim + _MIN_SIDE}"
        )
    return trim


def _align(pred: np.ndarray, gt: np.ndarray, trim: int):
    """Alignment on validated complex128 arrays; also returns the amplitude scale."""
    if trim:
        pred = pred[trim:-trim, trim:-trim]
        gt = gt[trim:-trim, trim:-trim]
    amp_gt = np.abs(gt)
    amp_pred = np.abs(pred)
    mean_pred = float(amp_pred.mean())
    # An all-zero prediction cannot be rescaled; leave it as is (metrics show failure).
    scale = float(amp_gt.mean()) / mean_pred if mean_pred > 0 else 1.0
    amp_pred = amp_pred * scale
    phase_pred = remove_phase_plane(np.angle(pred))
    phase_gt = remove_phase_plane(np.angle(gt))
    return amp_pred, amp_gt, phase_pred, phase_gt, scale


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


def align_for_metrics(pred, gt, trim: int = 2):
    """Apply the reference alignment recipe to two complex images.

    Args:
        pred: (H, W) complex array, the prediction (same shape as ``gt``).
        gt: (H, W) complex array, the ground truth (same shape as ``pred``).
        trim: pixels removed from every side before anything else.

    Returns:
        ``(amp_pred, amp_gt, phase_pred, phase_gt)``, each (H - 2*trim, W - 2*trim)
        float64: ``amp_pred = |pred| * mean(|gt|)/mean(|pred|)`` (unscaled if
        ``mean(|pred|) == 0``), ``amp_gt = |gt|``, and each phase ``np.angle`` with its
        own fitted plane removed (no unwrapping, no automatic sign flip).
    """
    p, g = _check_pair(pred, gt)
    trim = _check_trim(trim, g.shape)
    amp_pred, amp_gt, phase_pred, phase_gt, _ = _align(p, g, trim)
    return amp_pred, amp_gt, phase_pred, phase_gt


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
    from skimage.metrics import structural_similarity

    if data_range <= 0.0:
        return math.nan
    return float(structural_similarity(target, pred, data_range=data_range))


def evaluate_reconstruction(pred, gt, *, trim: int = 2) -> dict:
    """Score a complex reconstruction against the ground truth (reference recipe).

    Args:
        pred: (H, W) complex array, finite, same shape as ``gt`` (e.g. the stitched
            reconstruction).
        gt: (H, W) complex array, finite, same shape as ``pred`` (e.g.
            ``clip_to_region(YY_ground_truth[..., 0], region)``).
        trim: border pixels removed on every side (reference: 2).

    Returns:
        dict with

        * ``metrics``: ``{name: [amplitude_value, phase_value]}`` (python floats):

          * ``mae``, ``mse`` -- of the aligned images (:func:`align_for_metrics`);
            amplitude in ground-truth units, phase in radians.
          * ``psnr`` -- ``10*log10(data_range**2 / mse)`` with
            ``data_range = max - min`` of the aligned ground-truth image of that channel
            (amplitude; plane-removed phase in radians); ``inf`` when mse == 0, NaN if
            the gt channel is constant.
          * ``psnr_legacy255`` -- LEGACY, for comparison with the reference's published
            numbers only: OpenCV's ``cv2.PSNR`` with its fixed peak 255,
            ``20*log10(255 / (sqrt(mse) + DBL_EPSILON))``, computed on float32 copies
            of the same aligned images the reference used (amplitude: ground-truth
            units, prediction mean-scaled; phase: plane-removed radians, no shift). Not
            a physically meaningful PSNR (values ~60-80 dB); finite (~361 dB) at
            mse == 0.
          * ``ssim`` -- ``skimage.metrics.structural_similarity(gt, pred, data_range)``,
            default 7x7 window. Amplitude: data_range = range of aligned gt. Phase:
            both mapped by ``(phi + pi) / (2*pi)``, data_range 1.0. NaN if the gt
            amplitude is constant.
          * ``frc50``, ``frc_1_7`` -- frequency (cycles/pixel, in [0, 0.5]) where the
            FRC of the aligned images first drops below 0.5 and 1/7 (:func:`frc_curve`
            with its default mean subtraction + Hann window,
            :func:`frc_threshold_crossing`; 0.5 = never drops). The reference reported
            ring indices, not frequencies.

        * ``phase_correlation``: Pearson correlation of the aligned phases (NaN if one
          is constant). Near -1 signals the conjugate (twin) solution, not flipped here.
        * ``phase_strength_ratio``: ``std(phase_pred) / std(phase_gt)`` after plane
          removal (1 = right phase contrast; NaN if the gt phase is flat).
        * ``amplitude_scale``: the factor ``mean(|gt|)/mean(|pred|)`` applied to the
          prediction (after trimming); far from 1 means the absolute scale is off.
        * ``frc``: ``{"freqs": list, "amplitude": list, "phase": list}`` full FRC
          curves.

    Raises:
        ValueError: naming ``pred`` / ``gt`` if they are not (H, W) complex arrays of
            the same shape with finite values.
    """
    p, g = _check_pair(pred, gt)
    trim = _check_trim(trim, g.shape)
    amp_pred, amp_gt, ph_pred, ph_gt, scale = _align(p, g, trim)

    channels = ((amp_pred, amp_gt), (ph_pred, ph_gt))
    mae, mse, psnr, legacy, ssim, frc50, frc17 = ([] for _ in range(7))
    curves = []
    for ci, (pr, tg) in enumerate(channels):
        diff = tg - pr
        m_abs = float(np.mean(np.abs(diff)))
        m_sq = float(np.mean(diff * diff))
        data_range = float(tg.max() - tg.min())
        mae.append(m_abs)
        mse.append(m_sq)
        psnr.append(_psnr(m_sq, data_range))
        legacy.append(_psnr_legacy255(tg, pr))
        if ci == 0:
            ssim.append(_ssim(tg, pr, data_range))
        else:
            ssim.append(_ssim((tg + np.pi) / (2 * np.pi), (pr + np.pi) / (2 * np.pi), 1.0))
        freqs, frc = frc_curve(tg, pr)
        curves.append(frc)
        frc50.append(frc_threshold_crossing(freqs, frc, 0.5))
        frc17.append(frc_threshold_crossing(freqs, frc, 1.0 / 7.0))

    sd_pred = float(ph_pred.std())
    sd_gt = float(ph_gt.std())
    if sd_pred > 0 and sd_gt > 0:
        corr = float(np.mean((ph_pred - ph_pred.mean()) * (ph_gt - ph_gt.mean())) / (sd_pred * sd_gt))
    else:
        corr = math.nan
    ratio = sd_pred / sd_gt if sd_gt > 0 else math.nan

    return {
        "metrics": {
            "mae": mae,
            "mse": mse,
            "psnr": psnr,
            "psnr_legacy255": legacy,
            "ssim": ssim,
            "frc50": frc50,
            "frc_1_7": frc17,
        },
        "phase_correlation": corr,
        "phase_strength_ratio": float(ratio),
        "amplitude_scale": float(scale),
        "frc": {
            "freqs": [float(v) for v in freqs],
            "amplitude": [float(v) for v in curves[0]],
            "phase": [float(v) for v in curves[1]],
        },
    }
