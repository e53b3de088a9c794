"""gridsize 2 end to end, and the stitching of true patches through the study's own
``reconstruct_test_object`` (both stitch modes at gridsize 1, positions at gridsize 2)."""
import json

import numpy as np
import pytest

import grid_lines_torch_runner as runner
from ptycho.config.config import InferenceConfig
from ptycho.stitching import grid_region
from ptycho_torch.engine.inference import reconstruct_test_object


def test_gridsize2_study_runs_and_stitches_by_positions(tmp_path):
    cfg = runner.from_preset(
        "none", architecture="fno", gridsize=2, N=32, object_size=64, n_lines=40,
        train_stride=4, test_stride=8, n_train_objects=1, n_test_objects=1, epochs=1,
        batch_size=16, fno_width=8, fno_modes=4, fno_blocks=1, fno_cnn_blocks=0,
        max_train_patterns=64, output_dir=str(tmp_path / "g2"), progress_bar=False)
    metrics = runner.run_grid_lines_torch(cfg)
    assert all(np.isfinite(metrics["ssim"])) and len(metrics["ssim"]) == 2
    assert metrics["stitch"]["mode"] == "positions"
    assert metrics["n_train_patterns"] + metrics["n_val_patterns"] == 8 * 8  # (9 - 1)**2 groups
    rec = np.load(tmp_path / "g2" / "recons" / "pinn_fno" / "recon.npz")
    side = ((64 - 32) // 8 + 1) * 8
    assert rec["reconstruction"].shape == (side, side)
    assert np.all(np.abs(rec["reconstruction"]) > 0)  # every pixel covered by some patch
    cfg_json = json.loads((tmp_path / "g2" / "runs" / "pinn_fno" / "config.json").read_text())
    assert cfg_json["study"]["model"]["gridsize"] == 2


@pytest.mark.parametrize("gridsize,stitch", [(1, "positions"), (1, "tiles"), (2, "positions")])
def test_true_patches_reproduce_the_ground_truth(gridsize, stitch, tiny_data, tiny_data_g2,
                                                 true_patch_model):
    """A model that predicts the true patches (cut from the ground truth at the dataset's
    centres) makes the study's reconstruction equal the ground truth on the scored region."""
    _, test = tiny_data if gridsize == 1 else tiny_data_g2
    assert test.gridsize == gridsize
    model = true_patch_model(test)
    rec = reconstruct_test_object(model, test, InferenceConfig(stitch=stitch, infer_batch_size=7))
    meta = test.metadata
    assert rec.region == grid_region(test.N, meta["stride"], meta["n_side"])
    assert rec.ground_truth is not None and rec.recon.shape == rec.ground_truth.shape
    assert model.calls == -(-rec.n_patterns // 7)  # batched as asked
    scale = float(np.abs(rec.ground_truth).max())
    np.testing.assert_allclose(rec.recon, rec.ground_truth, rtol=0, atol=1e-5 * scale)
    assert rec.stitch["mode"] == stitch


def test_a_wrong_patch_cut_is_noticed(tiny_data_g2, true_patch_model):
    """The comparison above is sensitive: patches cut one pixel off do not reproduce it."""
    _, test = tiny_data_g2
    rec = reconstruct_test_object(true_patch_model(test, shift=(1, 0)), test, InferenceConfig())
    assert np.abs(rec.recon - rec.ground_truth).max() > 1e-2 * np.abs(rec.ground_truth).max()
