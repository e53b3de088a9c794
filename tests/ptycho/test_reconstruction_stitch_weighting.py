"""``stitch_weighting="probe"`` through the study's own stitching of the test scan: the
weights are the forward model's probe intensity, and they change the overlaps' average."""
import numpy as np
import torch

from ptycho.config.config import InferenceConfig
from ptycho.stitching import probe_weights, stitch
from ptycho.reconstruction import stitch_options, stitch_test_object
from ptycho_torch.engine.inference import reconstruct_test_object


def _two_mode_probe(N, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(2, N, N)) + 1j * rng.normal(size=(2, N, N))).astype(np.complex64)


def test_probe_weighted_test_scan_is_the_weighted_average(tiny_data_g2):
    _, test = tiny_data_g2
    sub = test.select(test.object_selection(0))
    rng = np.random.default_rng(1)
    shape = (sub.n, test.gridsize ** 2, test.N, test.N)
    patches = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    probe = _two_mode_probe(test.N)
    inference = InferenceConfig(stitch_weighting="probe")
    rec = stitch_test_object(patches, test, inference, probe=probe)
    expected, _ = stitch(patches, sub.centres.astype(np.float64), stitch_options(inference, test.N),
                         canvas_shape=test.ground_truth.shape, weights=probe_weights(probe))
    np.testing.assert_allclose(rec.canvas, expected.astype(np.complex64), rtol=1e-6, atol=1e-6)
    assert rec.stitch["weighting"] == "probe"
    uniform = stitch_test_object(patches, test, InferenceConfig())
    assert uniform.stitch["weighting"] == "uniform" and uniform.stitch_weights is None
    assert np.abs(rec.recon - uniform.recon).max() > 0.05


def test_the_weights_come_from_the_models_own_probe(tiny_data_g2, true_patch_model):
    _, test = tiny_data_g2
    model = true_patch_model(test)
    learned = _two_mode_probe(test.N, seed=2)          # not the test scan's probe
    model.current_probe = lambda: torch.as_tensor(learned)
    rec = reconstruct_test_object(model, test, InferenceConfig(stitch_weighting="probe"))
    np.testing.assert_array_equal(rec.stitch_weights, probe_weights(learned))
    assert not np.allclose(rec.stitch_weights, probe_weights(test.probe))
    # true patches agree wherever they overlap: any weighting still gives the ground truth
    scale = float(np.abs(rec.ground_truth).max())
    np.testing.assert_allclose(rec.recon, rec.ground_truth, rtol=0, atol=1e-5 * scale)
