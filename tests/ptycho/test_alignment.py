"""The alignment before every metric (ptycho.alignment, ptycho.evaluation): a global phase, a
phase ramp and (for rows whose frame is not fixed) a sub-pixel translation are removed in the
complex domain, and what was removed is reported."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import fourier_shift, gaussian_filter

from ptycho.alignment import align_complex
from ptycho.evaluation import align_for_metrics, evaluate_reconstruction
from ptycho.formats.ptychopinn_npz import read_npz_arrays

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run1084():
    """The run-1084 object (227 x 226): amplitude 0.03..1.33, phase -2.4..2.2 rad."""
    arrays, _ = read_npz_arrays(REPO / "data/run1084_recon3_postPC.npz", required=("objectGuess",))
    return arrays["objectGuess"].astype(np.complex128)


def _centred(shape):
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return x - (w - 1) / 2, y - (h - 1) / 2


@pytest.mark.parametrize("theta", [0.7, 3.0, math.pi - 0.01, -3.1])
def test_global_phase_and_ramp_of_the_truth_score_perfect(run1084, theta):
    gt = run1084[40:190, 40:190]
    x, y = _centred(gt.shape)
    ramp = (0.031, -0.047)                       # rad/px: wraps across the 150 px crop
    pred = gt * np.exp(1j * (theta + ramp[0] * x + ramp[1] * y))
    res = evaluate_reconstruction(pred, gt)
    m = res["metrics"]
    assert m["psnr"][1] > 100 and m["psnr"][0] > 100
    assert m["mae"][1] < 1e-9
    assert res["phase_correlation"] == pytest.approx(1.0, abs=1e-9)
    assert m["ssim"][1] == pytest.approx(1.0, abs=1e-9)
    # what was removed is what was put in (the offset at the image centre)
    assert res["phase_offset"] == pytest.approx(theta, abs=1e-9)
    assert res["phase_ramp"] == pytest.approx(list(ramp), abs=1e-9)
    assert res["registration_shift_px"] is None
    json.dumps(res)


def test_the_whole_run1084_object_times_exp_3i_is_perfect(run1084):
    """Before the fix: phase PSNR 5.6 dB and phase correlation -0.30."""
    res = evaluate_reconstruction(run1084 * np.exp(3j), run1084)
    assert res["metrics"]["psnr"][1] > 100
    assert res["phase_correlation"] == pytest.approx(1.0, abs=1e-9)
    assert res["phase_offset"] == pytest.approx(3.0, abs=1e-9)


def _shifted(obj, dx, dy, crop):
    """``obj`` moved by (dx, dy) px with a Fourier shift, then both cut at ``crop``: the
    object moved as a scan of shifted positions would give it (no wrapped edges in the crop)."""
    moved = np.fft.ifftn(fourier_shift(np.fft.fftn(obj), (dy, dx)))
    return moved[crop], obj[crop]


def test_a_subpixel_shift_is_registered_and_recorded(run1084):
    # band-limited (a sub-pixel shift of content at Nyquist is not defined)
    obj = gaussian_filter(run1084.real, 1.0) + 1j * gaussian_filter(run1084.imag, 1.0)
    crop = (slice(50, 170), slice(50, 170))
    pred, gt = _shifted(obj, 0.4, 0.0, crop)
    pred = pred * np.exp(0.8j)
    plain = evaluate_reconstruction(pred, gt)
    reg = evaluate_reconstruction(pred, gt, register=True)
    assert plain["registration_shift_px"] is None
    assert plain["metrics"]["psnr"][0] < 40 and plain["metrics"]["psnr"][1] < 45
    assert reg["registration_shift_px"] == pytest.approx([0.4, 0.0], abs=0.011)
    assert reg["phase_offset"] == pytest.approx(0.8, abs=1e-3)
    assert reg["metrics"]["psnr"][0] > 75 and reg["metrics"]["psnr"][1] > 75
    assert reg["phase_correlation"] == pytest.approx(1.0, abs=1e-6)
    # away from the trimmed edges the registered reconstruction is the truth
    amp, amp_gt, ph, ph_gt = align_for_metrics(pred, gt, register=True)
    e = 6
    np.testing.assert_allclose(amp[e:-e, e:-e], amp_gt[e:-e, e:-e], atol=2e-4)
    np.testing.assert_allclose(ph[e:-e, e:-e], ph_gt[e:-e, e:-e], atol=5e-4)
    # a shift in both directions, sign and axis as recorded: [x, y]
    pred, gt = _shifted(obj, -0.7, 1.3, crop)
    al = align_complex(pred, gt, register=True)
    assert al.registration_shift_px == pytest.approx((-0.7, 1.3), abs=0.011)
    assert al.removed()["registration_shift_px"] == pytest.approx([-0.7, 1.3], abs=0.011)


def test_registering_the_truth_itself_changes_nothing(run1084):
    res = evaluate_reconstruction(run1084, run1084, register=True)
    assert res["registration_shift_px"] == [0.0, 0.0]
    assert res["metrics"]["mae"][0] < 1e-12 and res["metrics"]["mae"][1] < 1e-12
