"""ptycho-reconstruct brings any scan to the units its model was trained in.

One tiny model (fno, N = 32, 1 epoch) trained on this project's dataset NPZ (amplitudes
sqrt(counts) / s) reconstructs the same scan written as that NPZ, an upstream PtychoPINN NPZ,
a CXI file and a Ptychodus pair (all three in counts): the same reconstruction to float32
tolerance. A scan whose units cannot be related to the model's is refused in one line.
The scan: 30 Fermat-spiral positions on a grid-lines object, a 2-mode probe, 1e5 photons
per pattern, no bad pixels.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import simulate_spiral_scan
from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz
from ptycho.probes import two_mode_probe
from ptycho_torch.cli import reconstruct_main

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "studies"))
import grid_lines_torch_runner as runner  # noqa: E402

TINY_MODEL = ["--N", "32", "--architecture", "fno", "--fno-width", "8", "--fno-modes", "4",
              "--fno-blocks", "1", "--fno-cnn-blocks", "1", "--epochs", "1", "--num-threads",
              "1", "--no-progress-bar", "--batch-size", "8"]
LAYOUTS = ("dataset", "npz", "cxi", "ptychodus")


@pytest.fixture(scope="module")
def study(tmp_path_factory, write_layouts):
    """The scan in every layout, and the model trained on its dataset NPZ."""
    d = tmp_path_factory.mktemp("scan_units")
    obj = make_object(96, 40, np.random.default_rng(3))
    scan = simulate_spiral_scan(obj, 32, 30, step_px=4.0, jitter_px=0.7,
                                probe_modes=two_mode_probe(32), nphotons=1e5, seed=4)
    files = write_layouts(scan, d)
    out = d / "study"
    assert runner.main(["--train-npz", str(files["dataset"]), "--output-dir", str(out),
                        *TINY_MODEL]) == 0
    return scan, files, out / "runs" / "pinn_fno"


def _reconstruct(run: Path, data: Path, out: Path, *extra: str) -> int:
    return reconstruct_main(["--checkpoint", str(run / "model.ckpt"), "--data", str(data),
                             "--output-dir", str(out), "--device", "cpu", *extra])


def test_one_model_reconstructs_every_layout_alike(study, tmp_path):
    scan, files, run = study
    trained = json.loads((run / "metrics.json").read_text())
    recon, res, scale = {}, {}, {}
    for name in LAYOUTS:
        assert _reconstruct(run, files[name], tmp_path / name) == 0, name
        m = json.loads((tmp_path / name / "metrics.json").read_text())
        res[name], scale[name] = m["data_residual"]["amplitude_mae"], m.get("scan_scale")
        with np.load(tmp_path / name / "recon.npz") as z:
            recon[name] = z["reconstruction"]
    # the training file itself: what the study measured
    assert res["dataset"] == pytest.approx(trained["data_residual"]["amplitude_mae"], rel=1e-6)
    ref = recon["dataset"]
    for name in LAYOUTS[1:]:
        # float32 tolerance: the layouts' stored amplitudes differ by one float32 rounding
        # (~1e-7 relative), which the network carries through
        assert res[name] == pytest.approx(res["dataset"], rel=1e-5), name
        assert recon[name].shape == ref.shape
        assert np.abs(recon[name] - ref).max() <= 1e-5 * np.abs(ref).max(), name
    # the scale applied: the scan's photon scale (the dataset NPZ is already in the units)
    for name in LAYOUTS:
        assert scale[name]["value"] == pytest.approx(scan.photon_scale, rel=1e-6), name
        assert scale[name]["relative"] == pytest.approx(
            1.0 if name == "dataset" else scan.photon_scale, rel=1e-6), name


def test_a_scan_whose_units_cannot_be_related_is_refused(study, tmp_path, capsys):
    scan, files, run = study
    training_rms = 1.0 / json.loads((run / "metrics.json").read_text())["input_scale"]
    rms_counts = math.sqrt(np.mean(scan.counts.astype(np.float64)))
    s = scan.photon_scale
    out = tmp_path / "never"
    # a probe 1000x too weak for its counts
    weak = write_ptychopinn_npz(tmp_path / "weak.npz", replace(scan, probe=scan.probe / 1000))
    assert _reconstruct(run, weak, out) == 2
    r = 1000 * rms_counts / s / training_rms
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: dataset '{weak}': key 'probeGuess' is not in the units of the patterns "
        f"'diffraction' (read as counts): with the probe at the model's total intensity their "
        f"amplitude RMS is {r:.3g}x the training data's (expected 0.1..10, by Parseval an "
        "object like the training one's; check --data-unit, or store the probe in the "
        "patterns' units) [flag --data]"]
    # counts read as amplitudes
    assert _reconstruct(run, files["cxi"], out, "--data-unit", "amplitude") == 2
    r = math.sqrt(np.mean(scan.counts.astype(np.float64) ** 2)) / s / training_rms
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: dataset '{files['cxi']}': key '/entry_1/image_1/data' is not in the units of "
        f"the patterns '/entry_1/data_1/data' (read as amplitude): with the probe at the "
        f"model's total intensity their amplitude RMS is {r:.3g}x the training data's "
        "(expected 0.1..10, by Parseval an object like the training one's; check --data-unit, "
        "or store the probe in the patterns' units) [flag --data]"]
    assert not out.exists()
