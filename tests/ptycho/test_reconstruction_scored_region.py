"""Defect 5.2: network and iterative rows of a scan without a grid are scored on one region
(``ptycho.reconstruction.scored_region``), with or without ground truth."""
import dataclasses

import numpy as np
import pytest

from ptycho.config.config import InferenceConfig
from ptycho.formats.readers import read_dataset
from ptycho.stitching import scan_region, stitch_by_positions
from ptycho.study_metrics import StudyMetrics
from ptycho.config.validation import StudyError
from ptycho_torch.studies.comparison import common_region
from ptycho_torch.ptychi.baseline import iterative_reconstruction
from ptycho.geometry.patches import object_patches
from ptycho.reconstruction import scored_region, stitch_test_object


@pytest.fixture(scope="module")
def spiral(spiral_npz):
    return read_dataset(str(spiral_npz), N=32, gridsize=1)


@pytest.mark.parametrize("with_gt", [False, True])
@pytest.mark.parametrize("crop", [0, 12, 32])
def test_network_and_iterative_rows_share_the_region(spiral, with_gt, crop):
    data = spiral
    c = data.centres.reshape(-1, 2)
    frame = (int(np.ceil(c[:, 1].max())) + 32, int(np.ceil(c[:, 0].max())) + 32)
    rng = np.random.default_rng(0)
    obj = (rng.normal(1, .1, frame) * np.exp(1j * rng.normal(0, .3, frame))).astype(np.complex64)
    if with_gt:
        data = dataclasses.replace(data, ground_truth=obj)
    inference = InferenceConfig(stitch_crop=crop)
    patches = object_patches(obj, data.centres, 32)
    net = stitch_test_object(patches, data, inference)
    it = iterative_reconstruction(data, obj, time_s=0.0, n_patterns=data.n, batch_size=1,
                                  inference=inference)
    assert net.region == it.region == scored_region(data, inference)
    assert net.recon.shape == it.recon.shape == tuple(net.region[2:])
    # the region is the fully covered box of the stitch: every pixel in it is covered
    k = inference.crop_for(32)
    _, coverage = stitch_by_positions(patches, data.centres, frame, crop=k)
    r0, c0, h, w = net.region
    assert (coverage[r0:r0 + h, c0:c0 + w] > 0).all()
    assert net.region == scan_region(data.centres, 32, crop=k)
    # the stitch of the true patches is the object there (integer placement aside)
    if with_gt:
        assert net.ground_truth.shape == it.ground_truth.shape
    rows = [StudyMetrics(model_id=m, kind=k_, ground_truth=with_gt, region=list(r.region))
            for m, k_, r in (("pinn_fno", "network", net), ("ptychi_lsqml", "iterative", it))]
    assert common_region(rows) == list(net.region)


def test_rows_of_different_regions_are_named_in_the_refusal():
    rows = [StudyMetrics(model_id="pinn_fno", kind="network", ground_truth=True,
                         region=[1, 2, 30, 40]),
            StudyMetrics(model_id="ptychi_lsqml", kind="iterative", ground_truth=True,
                         region=[0, 0, 30, 40])]
    with pytest.raises(StudyError, match=r"^the methods were scored on different regions "
                                         r"\(row0, col0, height, width\) \(ptychi_lsqml: \[0, 0, "
                                         r"30, 40\]; pinn_fno: \[1, 2, 30, 40\]\); rerun the rows "
                                         r"written by an older version with --overwrite$"):
        common_region(rows)
