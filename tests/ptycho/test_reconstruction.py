"""ptycho.reconstruction: the metrics record every row is built from."""
import numpy as np
import pytest

from ptycho.reconstruction import Reconstruction, reconstruction_record


def _rec(inference_time_s: float) -> Reconstruction:
    obj = np.ones((8, 8), np.complex64)
    return Reconstruction(recon=obj, ground_truth=None, region=(0, 0, 8, 8),
                          patches=np.ones((5, 1, 4, 4), np.complex64),
                          inference_time_s=inference_time_s, stitch_time_s=0.0, n_patterns=5,
                          infer_batch_size=4, stitch={})


@pytest.mark.parametrize("seconds, rate", [(0.5, 10.0), (0.0, None)])
def test_the_inference_rate_is_none_when_no_prediction_ran(seconds, rate):
    """A row that reuses another row's object (a held-out pick, epoch 0 of a refinement)
    predicts nothing: its rate is None ('-' in tables), not patterns / 1e-9."""
    m = reconstruction_record("x", "network", _rec(seconds), {}, "cpu", 1)
    assert m.inference_patterns_per_s == rate
