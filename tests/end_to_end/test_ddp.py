"""Data-parallel training on CPU: two processes (gloo) launched by Lightning from the CLI.

Only rank 0 predicts, scores and writes, once; its reconstruction equals single-process
inference on the saved checkpoint.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "studies" / "grid_lines_torch_runner.py"


def test_two_process_ddp_writes_artifacts_once_and_matches_single_process_inference(
        tmp_path, tiny_paths):
    out = tmp_path / "ddp"
    cmd = [sys.executable, str(SCRIPT), "--N", "32", "--test-stride", "8", "--architecture", "fno",
           "--fno-width", "8", "--fno-modes", "4", "--fno-blocks", "1", "--fno-cnn-blocks", "1",
           "--epochs", "2", "--num-threads", "1", "--no-progress-bar", "--infer-batch-size", "7",
           "--device", "cpu", "--devices", "2", "--strategy", "ddp",
           "--train-npz", str(tiny_paths.train), "--test-npz", str(tiny_paths.test),
           "--output-dir", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    # one summary row and one stop line: only rank 0 reports
    assert [ln for ln in r.stdout.splitlines() if ln.startswith("| pinn_fno |")] != []
    assert len([ln for ln in r.stdout.splitlines() if ln.startswith("| pinn_fno |")]) == 1
    assert r.stdout.count("stop: max_epochs after") == 1

    run = out / "runs" / "pinn_fno"
    m = json.loads((run / "metrics.json").read_text())
    assert m["world_size"] == 2 and m["epochs_completed"] == 2  # really two processes
    assert m["epochs_trained"] == 2.0  # steps per epoch counted per rank
    assert json.loads((run / "history.json").read_text())["epoch"] == [0, 1]
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()
                   and ".work" not in p.parts)
    assert files == ["recons/pinn_fno/recon.npz", "runs/pinn_fno/config.json",
                     "runs/pinn_fno/history.json", "runs/pinn_fno/metrics.json",
                     "runs/pinn_fno/model.ckpt", "visuals/pinn_fno_frc.png",
                     "visuals/pinn_fno_reconstruction.png"]

    # rank-0 inference == single-process inference on the same weights
    from ptycho.config.config import InferenceConfig
    from ptycho.io import load_dataset
    from ptycho.study_metrics import METRIC_KEYS
    from ptycho_torch.model import PtychoPINN_Lightning
    from ptycho.reconstruction import score
    from ptycho_torch.engine.inference import reconstruct_test_object
    model = PtychoPINN_Lightning.load_from_checkpoint(run / "model.ckpt", map_location="cpu")
    test = load_dataset(tiny_paths.test, require_ground_truth=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rec = reconstruct_test_object(model, test, InferenceConfig(infer_batch_size=7))  # as the run
    finally:
        torch.set_num_threads(threads)
    saved = np.load(out / "recons" / "pinn_fno" / "recon.npz")
    np.testing.assert_array_equal(rec.recon, saved["reconstruction"])
    result, _ = score(rec)
    assert {k: list(result["metrics"][k]) for k in METRIC_KEYS} == {k: m[k] for k in METRIC_KEYS}
