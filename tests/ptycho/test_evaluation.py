"""Tests for ptycho.evaluation: the reference metric recipe with physical values."""

import json
import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage.draw import line

from ptycho.frc import frc_curve, frc_threshold_crossing
from ptycho.evaluation import (
    align_for_metrics,
    evaluate_reconstruction,
    METRIC_NAMES,
    remove_phase_plane,
)

METRICS = ("mae", "mse", "psnr", "psnr_legacy255", "ssim", "frc50", "frc_1_7", "frc_halfbit")
assert METRIC_NAMES == METRICS


def grid_lines_object(n=96, n_lines=40, seed=0, dtype=np.complex128):
    """Small grid-lines-like object (same recipe as the study, scaled down)."""
    rng = np.random.default_rng(seed)
    big = 2 * n
    canvas = np.zeros((big, big))
    for r0, c0, r1, c1 in rng.integers(0, big, size=(n_lines, 4)):
        rr, cc = line(r0, c0, r1, c1)
        canvas[rr, cc] = 1.0
    amp = gaussian_filter(canvas, 1) + 2 * gaussian_filter(canvas, 5) + 5 * gaussian_filter(canvas, 10)
    o = (big - n) // 2
    amp = amp[o : o + n, o : o + n]
    phase = np.pi * np.tanh((amp - amp.max() / 2) / (3 * amp.mean()))
    return (amp * np.exp(1j * phase)).astype(dtype)


@pytest.fixture(scope="module")
def gt():
    return grid_lines_object()


def _assert_perfect_phase(m, res, tol=1e-9):
    assert m["mae"][1] < tol and m["mse"][1] < tol**2
    assert m["psnr"][1] > 120
    assert m["ssim"][1] == pytest.approx(1.0, abs=1e-9)
    assert m["frc50"][1] is None and m["frc_1_7"][1] is None  # never crossed: censored
    assert res["frc50_censored"][1] == res["frc_1_7_censored"][1] == ">= 0.5"
    assert res["phase_correlation"] == pytest.approx(1.0, abs=1e-9)
    assert res["phase_strength_ratio"] == pytest.approx(1.0, abs=1e-9)


def test_self_comparison_is_perfect(gt):
    res = evaluate_reconstruction(gt, gt)
    m = res["metrics"]
    assert set(m) == set(METRICS)
    for ch in (0, 1):
        assert m["mae"][ch] == 0.0 and m["mse"][ch] == 0.0
        assert m["psnr"][ch] == math.inf
        assert m["ssim"][ch] == pytest.approx(1.0, abs=1e-12)
        assert m["frc50"][ch] is None and m["frc_1_7"][ch] is None
        assert m["frc_halfbit"][ch] is None
        # OpenCV's PSNR at zero error: 20*log10(255 / DBL_EPSILON).
        assert m["psnr_legacy255"][ch] == pytest.approx(20 * math.log10(255 / np.finfo(float).eps))
    assert res["phase_correlation"] == pytest.approx(1.0, abs=1e-12)
    assert res["phase_strength_ratio"] == pytest.approx(1.0, abs=1e-12)
    assert res["amplitude_scale"] == pytest.approx(1.0, abs=1e-12)
    assert abs(res["phase_offset"]) < 1e-15 and max(map(abs, res["phase_ramp"])) < 1e-15
    assert res["registration_shift_px"] is None
    # Values are python floats (None for a censored crossing) and the result is
    # JSON-serializable.
    assert all(type(v) is float for k, vals in m.items() if not k.startswith("frc") for v in vals)
    assert len(res["frc"]["freqs"]) == len(res["frc"]["amplitude"]) == len(res["frc"]["phase"])
    json.dumps(res)


def test_amplitude_scale_invariance(gt):
    res = evaluate_reconstruction(3.0 * gt, gt)
    m = res["metrics"]
    assert res["amplitude_scale"] == pytest.approx(1 / 3, rel=1e-12)
    assert m["mae"][0] < 1e-12 and m["psnr"][0] > 200
    assert m["ssim"][0] == pytest.approx(1.0, abs=1e-12)
    assert m["frc50"][0] is None and m["frc_1_7"][0] is None
    _assert_perfect_phase(m, res)


def test_phase_plane_invariance(gt):
    h, w = gt.shape
    y, x = np.mgrid[0:h, 0:w]
    ramp = 0.01 * x - 0.007 * y + 0.3  # small enough that no phase wraps
    res = evaluate_reconstruction(gt * np.exp(1j * ramp), gt)
    m = res["metrics"]
    _assert_perfect_phase(m, res)
    assert m["mae"][0] < 1e-12  # amplitude untouched


def test_complex64_self_comparison_is_exact(gt):
    gt32 = gt.astype(np.complex64)
    res = evaluate_reconstruction(gt32, gt32)
    assert res["metrics"]["mae"] == [0.0, 0.0]


def test_blurred_prediction_scores_worse(gt):
    blurred = gaussian_filter(gt.real, 2) + 1j * gaussian_filter(gt.imag, 2)
    m = evaluate_reconstruction(blurred, gt)["metrics"]
    for ch in (0, 1):
        assert m["ssim"][ch] < 0.95
        assert m["frc50"][ch] is not None and m["frc50"][ch] < 0.5
        assert m["frc_1_7"][ch] is not None and m["frc_1_7"][ch] >= m["frc50"][ch]
        assert math.isfinite(m["psnr"][ch]) and 10 < m["psnr"][ch] < 60
        assert 0 < m["mae"][ch] < 1


def test_noise_lowers_psnr_monotonically(gt):
    rng = np.random.default_rng(1)
    z = rng.standard_normal(gt.shape) + 1j * rng.standard_normal(gt.shape)
    scale = np.abs(gt).mean()
    results = [evaluate_reconstruction(gt + s * scale * z, gt) for s in (0.003, 0.01, 0.03, 0.1)]
    for ch in (0, 1):
        psnr = [r["metrics"]["psnr"][ch] for r in results]
        ssim = [r["metrics"]["ssim"][ch] for r in results]
        # a censored crossing (None) lies at or beyond Nyquist: above every measured one
        frc50 = [0.5 if r["metrics"]["frc50"][ch] is None else r["metrics"]["frc50"][ch]
                 for r in results]
        legacy = [r["metrics"]["psnr_legacy255"][ch] for r in results]
        assert all(np.diff(psnr) < -5), psnr  # ~10 dB per factor sqrt(10) in noise
        assert all(np.diff(legacy) < -5), legacy
        assert all(np.diff(ssim) < 0), ssim
        assert all(np.diff(frc50) <= 0) and frc50[-1] < 0.4, frc50
    # Legacy PSNR differs from the true-range PSNR by 20*log10(255/data_range).
    a_p, a_g, p_p, p_g = align_for_metrics(gt + 0.01 * scale * z, gt)
    r = results[1]["metrics"]
    assert r["psnr_legacy255"][0] - r["psnr"][0] == pytest.approx(
        20 * math.log10(255 / (a_g.max() - a_g.min())), abs=1e-3
    )


def test_conjugate_is_reported_not_flipped(gt):
    # a weak phase object (|phase| < pi/4 after its global phase): the twin's difference
    # -2 phase never wraps, so its correlation is -1; a strong one only reads poorly
    weak = np.abs(gt) * np.exp(0.2j * np.angle(gt))
    res = evaluate_reconstruction(np.conj(weak), weak)
    assert res["phase_correlation"] == pytest.approx(-1.0, abs=1e-9)
    assert res["metrics"]["mae"][1] > 0.1
    assert res["metrics"]["mae"][0] < 1e-12
    strong = evaluate_reconstruction(np.conj(gt), gt)
    assert strong["phase_correlation"] < 0.5 and strong["metrics"]["psnr"][1] < 15


def test_remove_phase_plane_exact_plane_and_mask():
    h, w = 40, 50
    y, x = np.mgrid[0:h, 0:w]
    plane = 0.13 * x - 0.21 * y + 1.7
    np.testing.assert_allclose(remove_phase_plane(plane), 0.0, atol=1e-10)
    # Plane + bump: fitting only where the bump is absent recovers the bump exactly.
    bump = np.zeros((h, w))
    bump[10:20, 10:20] = 1.0
    out = remove_phase_plane(plane + bump, mask=bump == 0)
    np.testing.assert_allclose(out, bump, atol=1e-10)
    assert remove_phase_plane(plane.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="mask: expected a bool array of shape"):
        remove_phase_plane(plane, mask=np.ones((3, 3), dtype=bool))


def test_align_for_metrics_shapes_and_trim(gt):
    pred = 2.0 * gt
    a_p, a_g, p_p, p_g = align_for_metrics(pred, gt, trim=2)
    assert a_p.shape == a_g.shape == p_p.shape == p_g.shape == (92, 92)
    np.testing.assert_allclose(a_g, np.abs(gt[2:-2, 2:-2]))
    assert a_p.mean() == pytest.approx(a_g.mean(), rel=1e-12)
    # The truth's phase has its own plane removed, fitted with weights |gt|^2 (as the
    # alignment weights pred * conj(gt)); the prediction's is the truth's plus their wrapped
    # difference (zero here).
    t = gt[2:-2, 2:-2]
    y, x = np.mgrid[0:92, 0:92] - 45.5
    sw = np.abs(t).ravel()                        # sqrt of the weights |gt|^2
    design = np.stack([x.ravel(), y.ravel(), np.ones(x.size)], 1) * sw[:, None]
    coef = np.linalg.lstsq(design, np.angle(t).ravel() * sw, rcond=None)[0]
    np.testing.assert_allclose(p_g, np.angle(t) - (coef[0] * x + coef[1] * y + coef[2]),
                               atol=1e-12)
    np.testing.assert_allclose(p_p, p_g, atol=1e-12)
    assert align_for_metrics(pred, gt, trim=0)[0].shape == gt.shape


def test_frc_identical_is_one_everywhere():
    rng = np.random.default_rng(0)
    img = rng.standard_normal((64, 64))
    for window in ("hann", None):
        freqs, frc = frc_curve(img, img, window=window)
        assert freqs.shape == frc.shape == (33,)
        assert freqs[0] == 0.0 and freqs[-1] == 0.5
        np.testing.assert_allclose(frc, 1.0, atol=1e-12)
        assert frc_threshold_crossing(freqs, frc) is None


def test_frc_independent_noise_is_low_and_non_square_crop():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((70, 64))
    b = rng.standard_normal((70, 64))
    freqs, frc = frc_curve(a, b)
    assert freqs.shape == (33,)  # cropped to the central 64 x 64
    # Uncorrelated: rings of many pixels average to ~0 (std ~ 1/sqrt(ring size)).
    assert np.abs(frc[10:]).mean() < 0.15
    assert frc_threshold_crossing(freqs, frc) < 0.1
    # Cropping is central: same result as cropping by hand.
    np.testing.assert_allclose(frc, frc_curve(a[3:67], b[3:67])[1])


def test_frc_threshold_crossing_interpolates():
    freqs = np.array([0.0, 0.1, 0.2, 0.3])
    frc = np.array([1.0, 0.8, 0.4, 0.1])
    # Between 0.1 (0.8) and 0.2 (0.4): 0.5 reached at 0.1 + 0.3/0.4*0.1.
    assert frc_threshold_crossing(freqs, frc) == pytest.approx(0.175)
    expected = 0.2 + 0.1 * (0.4 - 1 / 7) / 0.3
    assert frc_threshold_crossing(freqs, frc, threshold=1 / 7) == pytest.approx(expected)
    assert frc_threshold_crossing(freqs, np.array([0.3, 0.2, 0.1, 0.0])) == 0.1
    assert frc_threshold_crossing(freqs, np.ones(4)) is None


def test_frc_crossing_ignores_the_dc_ring():
    freqs = np.array([0.0, 0.1, 0.2, 0.3])
    # the DC ring of mean-removed, windowed images is a sign: -1 there is not a crossing
    assert frc_threshold_crossing(freqs, np.array([-1.0, 0.8, 0.4, 0.1])) == pytest.approx(0.175)
    # a grid that does not start at DC is searched from its first ring
    assert frc_threshold_crossing(freqs[1:], np.array([0.4, 0.9, 0.9])) == pytest.approx(0.1)
    # a constant offset between two images does not change the crossing
    rng = np.random.default_rng(3)
    img = np.cumsum(np.cumsum(rng.standard_normal((64, 64)), 0), 1)
    noisy = img + 0.2 * img.std() * rng.standard_normal(img.shape)
    freqs, frc = frc_curve(img, noisy)
    shifted = frc_threshold_crossing(*frc_curve(img + 5 * img.std(), noisy))
    measured = frc_threshold_crossing(freqs, frc)
    assert measured is not None and measured > 0.05   # a measured crossing, not censored
    assert measured == pytest.approx(shifted, abs=1e-9)


def test_input_errors(gt):
    with pytest.raises(ValueError, match=r"pred: shape \(96, 90\) does not match gt shape \(96, 96\)"):
        evaluate_reconstruction(gt[:, :90], gt)
    bad = gt.copy()
    bad[5, 5] = np.nan
    with pytest.raises(ValueError, match="pred: contains NaN or inf"):
        evaluate_reconstruction(bad, gt)
    with pytest.raises(ValueError, match="gt: contains NaN or inf"):
        evaluate_reconstruction(gt, bad)
    with pytest.raises(ValueError, match="pred: expected a 2-D complex image"):
        evaluate_reconstruction(gt[None], gt)
    with pytest.raises(ValueError, match="gt: expected a 2-D complex image"):
        evaluate_reconstruction(gt, gt[..., None])
    with pytest.raises(ValueError, match="trim: got -1"):
        evaluate_reconstruction(gt, gt, trim=-1)
    with pytest.raises(ValueError, match="gt: shape .* is too small for trim=45"):
        evaluate_reconstruction(gt, gt, trim=45)
    with pytest.raises(ValueError, match="img2: shape"):
        frc_curve(np.zeros((8, 8)), np.zeros((8, 9)))


def test_metrics_table_format(gt):
    """The one study table (ptycho.study_metrics) shows a perfect self-comparison as such."""
    from ptycho.study_metrics import StudyMetrics, TABLE_COLUMNS, metrics_table
    res = evaluate_reconstruction(gt, gt)
    row = StudyMetrics(model_id="self", kind="network", ground_truth=True)
    row.set_scores(res)
    no_gt = StudyMetrics(model_id="blind", kind="iterative", ground_truth=False,
                         data_residual={"amplitude_mae": 0.25})
    lines = metrics_table([row, no_gt]).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    assert head[0] == "method" and head[1:1 + len(TABLE_COLUMNS)] == [c[0] for c in TABLE_COLUMNS]
    assert lines[1] == "|" + "---|" * len(head)
    assert len(lines) == 4
    cells = dict(zip(head, (c.strip() for c in lines[2].strip("|").split("|"))))
    assert cells["method"] == "self"
    assert cells["amp MAE"] == cells["phase MAE"] == "0"
    assert cells["amp PSNR"] == cells["phase PSNR"] == "inf"
    assert cells["amp SSIM"] == cells["phase SSIM"] == "1"
    assert cells["amp FRC50"] == cells["phase FRC50"] == ">= 0.5"  # never crossed
    blind = dict(zip(head, (c.strip() for c in lines[3].strip("|").split("|"))))
    assert all(blind[c[0]] == "-" for c in TABLE_COLUMNS)  # no ground truth: no scores
    assert blind["data residual"] == "0.25"


def test_format_number():
    from ptycho.study_metrics import format_number
    assert format_number(None) == "-"
    assert format_number(float("inf")) == "inf" and format_number(float("-inf")) == "-inf"
    assert format_number(float("nan")) == "nan" and format_number("nan") == "nan"
    assert format_number(0.123456789) == "0.1235" and format_number(0.123456789, 2) == "0.12"
    assert format_number("n/a") == "n/a"


# ------------------------------------------------------- censored crossings, half-bit
def test_a_curve_that_never_crosses_is_censored_not_a_number(gt):
    from ptycho.frc import frc_crossings
    freqs = np.arange(33) / 64.0
    assert frc_threshold_crossing(freqs, np.full(33, 0.9)) is None
    cross = frc_crossings(freqs, np.full(33, 0.9), 64)
    assert cross == {"frc50": (None, ">= 0.5"), "frc_1_7": (None, ">= 0.5"),
                     "frc_halfbit": (None, ">= 0.5")}
    # a curve that does cross is measured, and its label is None
    curve = np.linspace(1.0, 0.0, 33)
    value, label = frc_crossings(freqs, curve, 64)["frc50"]
    assert label is None and value == pytest.approx(0.25, abs=1e-12)
    # in the scores and in JSON: null beside its ">= 0.5" companion
    res = evaluate_reconstruction(gt, gt)
    out = json.loads(json.dumps(res))
    for key in ("frc50", "frc_1_7", "frc_halfbit"):
        assert out["metrics"][key] == [None, None]
        assert out[f"{key}_censored"] == [">= 0.5", ">= 0.5"]
    blurred = gaussian_filter(gt.real, 2) + 1j * gaussian_filter(gt.imag, 2)
    res = evaluate_reconstruction(blurred, gt)
    assert res["frc50_censored"] == [None, None] and None not in res["metrics"]["frc50"]


def _halfbit_by_hand(n):
    """Ring pixel counts by looping over the FFT grid, and van Heel & Schatz's curve."""
    counts = np.zeros(n // 2 + 1)
    for i in range(n):
        for j in range(n):
            ky = i if i < n - i else i - n          # signed integer frequencies
            kx = j if j < n - j else j - n
            r = int(round(math.sqrt(kx * kx + ky * ky)))
            if r <= n // 2:
                counts[r] += 1
    return counts, np.array([(0.2071 + 1.9102 / math.sqrt(c)) / (1.2071 + 0.9102 / math.sqrt(c))
                             for c in counts])


@pytest.mark.parametrize("n", [16, 33, 64])
def test_halfbit_threshold_matches_the_formula(n):
    from ptycho.frc import halfbit_threshold, ring_pixel_counts
    counts, curve = _halfbit_by_hand(n)
    np.testing.assert_array_equal(ring_pixel_counts(n), counts)
    np.testing.assert_allclose(halfbit_threshold(ring_pixel_counts(n)), curve, rtol=1e-12)
    assert curve[0] == pytest.approx(1.0, abs=1e-12)          # one pixel: the threshold is 1


def test_halfbit_crossing_is_where_the_curve_meets_the_threshold_curve():
    from ptycho.frc import frc_crossings, ring_pixel_counts
    n = 64
    freqs = np.arange(n // 2 + 1) / n
    counts, t = _halfbit_by_hand(n)
    frc = np.exp(-freqs / 0.15)                         # falls through every threshold
    d = frc - t
    i = int(np.flatnonzero(d[1:] < 0)[0]) + 1           # first ring below, DC skipped
    expected = freqs[i - 1] + d[i - 1] * (freqs[i] - freqs[i - 1]) / (d[i - 1] - d[i])
    value, label = frc_crossings(freqs, frc, n)["frc_halfbit"]
    assert label is None and value == pytest.approx(expected, rel=1e-12)
    assert frc_threshold_crossing(freqs, frc, t) == pytest.approx(expected, rel=1e-12)
    assert ring_pixel_counts(n).sum() < n * n             # corners beyond Nyquist dropped


def test_censored_crossings_in_the_record_and_its_table(gt):
    from ptycho.study_metrics import StudyMetrics, format_crossing
    row = StudyMetrics(model_id="self", kind="network", ground_truth=True)
    row.set_scores(evaluate_reconstruction(gt, gt))
    back = StudyMetrics.from_json(json.loads(json.dumps(row.to_json())))
    assert back.frc50 == [None, None] and back.frc50_censored == [">= 0.5", ">= 0.5"]
    assert back.frc_halfbit == [None, None] and back.frc_halfbit_censored == [">= 0.5"] * 2
    assert back.phase_offset == row.phase_offset and back.registration_shift_px is None
    assert math.isnan(back.value("frc50", 0))                 # no crash on null
    assert back.value("frc50", 1, censored_at_bound=True) == 0.5
    assert back.cell("frc50", 0) == ">= 0.5"
    assert format_crossing(None, ">= 0.5") == ">= 0.5" and format_crossing(0.25, None) == "0.25"
    # a record written before censoring (FRC50 0.5, no companion) still reads
    old = StudyMetrics.from_json({"model_id": "old", "kind": "network", "ground_truth": True,
                                  "frc50": [0.5, 0.31]})
    assert old.value("frc50", 0) == 0.5 and old.cell("frc50", 1) == "0.31"
