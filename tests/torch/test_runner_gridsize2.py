"""gridsize 2 end to end: overlap-constrained training, shift-and-average stitching."""
import json

import numpy as np

import grid_lines_torch_runner as runner


def test_gridsize2_study_runs_and_stitches_by_positions(tmp_path):
    cfg = runner.from_preset(
        "none", architecture="fno", gridsize=2, N=32, object_size=64, n_lines=40,
        train_stride=4, test_stride=8, n_train_objects=1, n_test_objects=1, epochs=1,
        batch_size=16, fno_width=8, fno_modes=4, fno_blocks=1, fno_cnn_blocks=0,
        max_train_patterns=64, output_dir=str(tmp_path / "g2"), progress_bar=False)
    metrics = runner.run_grid_lines_torch(cfg)
    assert all(np.isfinite(metrics["metrics"]["ssim"]))
    rec = np.load(tmp_path / "g2" / "recons" / "pinn_fno" / "recon.npz")
    side = ((64 - 32) // 8 + 1) * 8
    assert rec["reconstruction"].shape == (side, side)
    assert np.all(np.abs(rec["reconstruction"]) > 0)  # every pixel covered by some patch
    cfg_json = json.loads((tmp_path / "g2" / "runs" / "pinn_fno" / "config.json").read_text())
    assert cfg_json["torch"]["model"]["gridsize"] == 2


def test_gridsize2_stitching_of_true_patches_reproduces_ground_truth(tiny_data_g2):
    """Feeding the true object patches through the gridsize-2 stitching path gives the truth."""
    from ptycho.datagen.grid_lines import extract_patches
    from ptycho.stitching import clip_to_region, grid_region, stitch_by_positions
    _, test = tiny_data_g2
    meta = test["metadata"]
    N, stride, n_side = test["N"], meta["stride"], meta["n_side"]
    gt = test["YY_ground_truth"]
    sel = test["object_index"] == 0
    centres = (test["coords_offsets"][sel] + test["coords_nominal"][sel])[:, :, 0, :].reshape(-1, 2)
    # cut the true patch at each absolute centre
    patches_all = extract_patches(gt, N, stride)           # row-major scan, top-left = k*stride
    rows = ((centres[:, 1] - N // 2) / stride).round().astype(int)
    cols = ((centres[:, 0] - N // 2) / stride).round().astype(int)
    patches = patches_all[rows * n_side + cols]
    canvas, cover = stitch_by_positions(patches, centres, gt.shape, crop=stride)
    region = grid_region(N, stride, n_side)
    np.testing.assert_array_equal(clip_to_region(canvas, region), clip_to_region(gt, region))
    assert clip_to_region(cover, region).min() >= 1
