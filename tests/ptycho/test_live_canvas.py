"""The live reconstruction's numpy side: the incremental canvas against the batch stitching,
the frames' units against the readers', the latency quantiles."""
import numpy as np
import pytest

from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import simulate_spiral_scan
from ptycho.formats.model_units import read_in_model_units
from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz
from ptycho.formats import read_scan
from ptycho.live_frames import FrameUnits
from ptycho.live_outputs import LatencyHistogram
from ptycho.probes import make_probe, two_mode_probe
from ptycho.stitching import canvas_for_positions, probe_weights, scan_region, stitch_by_positions
from ptycho.stitching.incremental import IncrementalCanvas

N = 16


def _patches(rng, n):
    return (rng.normal(size=(n, N, N)) + 1j * rng.normal(size=(n, N, N))).astype(np.complex64)


def _chunked(canvas, patches, centres, rng):
    i = 0
    while i < len(patches):
        k = int(rng.integers(1, 30))
        canvas.add(patches[i:i + k], centres[i:i + k])
        i += k


@pytest.mark.parametrize("subpixel", ["none", "fourier", "bilinear"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("crop", [None, 8])
def test_incremental_canvas_equals_the_batch_stitching(subpixel, weighted, crop):
    """Chunks of random sizes, centres spiralling outwards from the middle (the canvas grows
    on every side, through negative coordinates): the same image, coverage and origin as
    one batch stitch of every patch."""
    rng = np.random.default_rng(1)
    n = 150
    t = np.arange(n) * 2.39996
    centres = np.stack([np.sqrt(np.arange(n)) * 6 * np.cos(t), np.sqrt(np.arange(n)) * 6 * np.sin(t)],
                       axis=1) + rng.uniform(-0.5, 0.5, (n, 2))
    patches = _patches(rng, n)
    w = probe_weights(make_probe(N)) if weighted else None
    inc = IncrementalCanvas(N, crop, subpixel, w)
    _chunked(inc, patches, centres, rng)
    img, covered, (row0, col0) = inc.image()
    shape, (ox, oy) = canvas_for_positions(centres, N, crop)
    ref, coverage = stitch_by_positions(patches, centres + [ox, oy], shape, crop=crop,
                                        subpixel=subpixel, weights=w)
    assert (row0, col0) == (-oy, -ox)
    assert img.shape == ref.shape and np.array_equal(covered, coverage > 0)
    assert np.allclose(img, ref, rtol=1e-5, atol=1e-6)
    recon, region = inc.scored()
    assert region == scan_region(centres, N, crop=crop or N)
    r, c = region[0] + oy, region[1] + ox
    assert np.allclose(recon, ref[r:r + region[2], c:c + region[3]], rtol=1e-5, atol=1e-6)


def test_the_canvas_memory_is_bounded_by_the_area_not_the_frames():
    rng = np.random.default_rng(2)
    centres = rng.uniform(0, 40, (100, 2))
    inc = IncrementalCanvas(N, None, "fourier")
    inc.add(_patches(rng, 100), centres)
    arrays = inc.num.nbytes + inc.den.nbytes + inc.cov.nbytes
    for _ in range(20):                      # 20 x more frames over the same area
        inc.add(_patches(rng, 100), centres)
    assert inc.num.nbytes + inc.den.nbytes + inc.cov.nbytes == arrays and inc.n == 2100


def test_frames_reach_the_model_in_the_units_of_ptycho_reconstruct(tmp_path):
    """Counts with bad pixels, a probe at another intensity than the model's: the live
    amplitudes equal those read_in_model_units gives for the finished file."""
    obj = make_object(80, 30, np.random.default_rng(3))
    scan = simulate_spiral_scan(obj, 32, 20, step_px=4.0, jitter_px=0.7,
                                probe_modes=two_mode_probe(32), nphotons=1e5, seed=4,
                                bad_pixel_fraction=0.01)
    path = write_ptychopinn_npz(tmp_path / "scan.npz", scan)
    model_probe = (two_mode_probe(32) * 3.0).astype(np.complex64)
    data, scale = read_in_model_units(str(path), model_probe)
    raw = read_scan(path)
    units = FrameUnits.of(str(path), "probeGuess", raw.probe, model_probe, raw.patterns[:4],
                          None, bad_pixels=raw.bad_pixels)
    assert units.unit == "counts" and units.k == pytest.approx(scale.relative)
    assert np.array_equal(units.amplitudes(raw.patterns), data.diffraction[:, 0])


def test_frames_with_nan_or_saturated_pixels_are_named():
    units = FrameUnits("counts", 1.0, np.eye(4, dtype=bool), saturation=100.0)
    p = np.ones((4, 4, 4), np.float32)
    p[1, 0, 1] = np.nan
    p[2, 2, 3] = 100.0
    p[3, 0, 0] = 1e6                         # a bad pixel: not measured, not saturated
    assert units.screen(p) == [None, "1 NaN or inf pixels", "1 saturated pixels (>= 100)", None]


def test_latency_quantiles_within_one_percent():
    s = np.random.default_rng(5).lognormal(0, 1, 5000)
    h = LatencyHistogram()
    h.add(s[:2000])
    h.add(s[2000:])
    for q in (0.5, 0.95):
        assert h.quantile(q) == pytest.approx(np.quantile(s, q), rel=0.01)
    assert LatencyHistogram().quantile(0.5) is None
