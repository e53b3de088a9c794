"""Bring your own scan: a non-grid scan without ground truth, in every supported format,
trained on with the study runner and reconstructed with both reconstruct entry points.

The scan (ptycho.datagen.spiral_scan): N = 32, 70 jittered Fermat-spiral positions on a
96 px grid-lines object, a 2-mode probe, Poisson counts (1e5 photons per pattern) and a
few bad pixels.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import simulate_spiral_scan
from ptycho.probes import two_mode_probe
from ptycho.formats.cxi import write_cxi
from ptycho.formats.ptychodus import write_ptychodus
from ptycho.formats.ptychodus_product import read_product
from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "studies"))
import grid_lines_torch_runner as runner  # noqa: E402
import reconstruct as reconstruct_script  # noqa: E402

from ptycho_torch.cli import reconstruct_main  # noqa: E402

TINY_MODEL = ["--N", "32", "--architecture", "fno", "--fno-width", "8", "--fno-modes", "4",
              "--fno-blocks", "1", "--fno-cnn-blocks", "1", "--epochs", "1", "--num-threads",
              "1", "--no-progress-bar", "--batch-size", "8"]


@pytest.fixture(scope="module")
def scan_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("own_scans")
    obj = make_object(96, 40, np.random.default_rng(3))
    scan = simulate_spiral_scan(obj, 32, 70, step_px=4.0, jitter_px=0.7,
                                probe_modes=two_mode_probe(32), nphotons=1e5, seed=4,
                                bad_pixel_fraction=0.005)
    diffraction, _ = write_ptychodus(d / "ptychodus", scan)
    return {"npz": write_ptychopinn_npz(d / "scan.npz", scan), "ptychodus": diffraction,
            "cxi": write_cxi(d / "scan.cxi", scan)}


@pytest.fixture(scope="module")
def trained(scan_files, tmp_path_factory):
    """One study per format (1 epoch): the runner trains on the scan and reconstructs it."""
    out = {}
    for name, path in scan_files.items():
        d = tmp_path_factory.mktemp(f"study_{name}")
        assert runner.main(["--train-npz", str(path), "--output-dir", str(d), *TINY_MODEL]) == 0
        out[name] = d
    return out


@pytest.mark.parametrize("name", ["npz", "ptychodus", "cxi"])
def test_study_on_a_scan_without_ground_truth(trained, name):
    run = trained[name] / "runs" / "pinn_fno"
    m = json.loads((run / "metrics.json").read_text())
    assert m["ground_truth"] is False
    assert all(m[k] is None for k in ("mae", "mse", "psnr", "ssim", "frc50"))
    res = m["data_residual"]
    assert res["n_patterns"] == 70 and 0 < res["amplitude_mae"] < 1
    assert m["stitch"]["mode"] == "positions" and m["stitch"]["subpixel"] == "fourier"
    assert "sqrt(counts)" in m["normalisation"]
    with np.load(trained[name] / "recons" / "pinn_fno" / "recon.npz") as z:
        assert "ground_truth" not in z.files and np.isfinite(z["reconstruction"]).all()
        assert min(z["reconstruction"].shape) >= 30  # the spiral's fully covered region
    assert (trained[name] / "visuals" / "pinn_fno_reconstruction.png").stat().st_size > 0


def test_formats_give_the_same_study(trained):
    """The same scan read from three formats trains to the same numbers."""
    res = [json.loads((trained[n] / "runs" / "pinn_fno" / "metrics.json").read_text())
           ["data_residual"]["amplitude_mae"] for n in ("npz", "ptychodus", "cxi")]
    assert res[0] == pytest.approx(res[1], rel=1e-5) and res[0] == pytest.approx(res[2], rel=1e-5)


@pytest.mark.parametrize("entry", ["script", "entry_point"])
@pytest.mark.parametrize("name", ["npz", "ptychodus", "cxi"])
def test_reconstruct_any_format_with_a_trained_model(trained, scan_files, tmp_path, name, entry):
    ckpt = trained["npz"] / "runs" / "pinn_fno" / "model.ckpt"
    out = tmp_path / "rec"
    argv = ["--checkpoint", str(ckpt), "--data", str(scan_files[name]), "--output-dir", str(out),
            "--infer-batch-size", "16"]
    main = reconstruct_script.main if entry == "script" else reconstruct_main
    assert main(argv) == 0
    for f in ("recon.npz", "product-out.h5", "metrics.json", "reconstruction.png"):
        assert (out / f).is_file(), f
    m = json.loads((out / "metrics.json").read_text())
    assert m["ground_truth"] is False and m["n_test_patterns_scored"] == 70
    # the model reconstructs what it was trained on: same residual as the study's own
    study = json.loads((trained["npz"] / "runs" / "pinn_fno" / "metrics.json").read_text())
    assert m["data_residual"]["amplitude_mae"] == pytest.approx(
        study["data_residual"]["amplitude_mae"], rel=1e-4)
    product = read_product(out / "product-out.h5")
    with np.load(out / "recon.npz") as z:
        recon = z["reconstruction"]
    assert np.allclose(product["object"], recon)
    assert product["probe"].shape[-3:] == (2, 32, 32)
    # a second run into the same folder is refused without --overwrite
    assert main(argv) == 2
    assert main(argv + ["--overwrite"]) == 0


def test_reconstruct_refusals(trained, scan_files, tmp_path, capsys):
    ckpt = trained["npz"] / "runs" / "pinn_fno" / "model.ckpt"
    out = tmp_path / "never"
    assert reconstruct_main(["--checkpoint", str(tmp_path / "missing.ckpt"), "--data",
                             str(scan_files["cxi"]), "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.match(r"^error: checkpoint '.*missing\.ckpt': file does not exist",
                                      err[0])
    # a scan of another pattern size than the model's
    obj = make_object(64, 20, np.random.default_rng(0))
    small = simulate_spiral_scan(obj, 16, 30, 3.0, 0.5, two_mode_probe(16), 1e4, 0)
    f16 = write_ptychopinn_npz(tmp_path / "n16.npz", small)
    assert reconstruct_main(["--checkpoint", str(ckpt), "--data", str(f16), "--output-dir",
                             str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: dataset '{f16}': key 'diffraction' has pattern size N = 16 "
                   "(expected N = 32, the model's) [flag --data]"]
    assert reconstruct_main(["--data", str(f16)]) == 2
    assert "--checkpoint is required" in capsys.readouterr().err
    assert not out.exists()


def test_probe_file_makes_a_realistic_simulated_study(scan_files, tmp_path):
    """--probe-npz: the simulated study uses the 2-mode probe of a Ptychodus product."""
    out = tmp_path / "sim"
    product = Path(scan_files["ptychodus"]).parent / "product-in.h5"
    argv = ["--object-size", "64", "--n-lines", "40", "--train-stride", "4", "--test-stride", "8",
            "--n-train-objects", "1", "--n-test-objects", "1", "--probe-npz", str(product),
            "--output-dir", str(out), *TINY_MODEL]
    assert runner.main(argv) == 0
    cfg = json.loads((out / "runs" / "pinn_fno" / "config.json").read_text())
    from ptycho.io import load_dataset
    train = load_dataset(cfg["data"]["train_npz"])
    assert train.probe.shape == (2, 32, 32)
    assert train.metadata["probe"]["source"] == "user file (--probe-npz)"
    m = json.loads((out / "runs" / "pinn_fno" / "metrics.json").read_text())
    assert m["ground_truth"] is True and len(m["psnr"]) == 2


def test_probe_file_replaces_the_probe_of_a_file_scan(scan_files, tmp_path, capsys):
    """--probe-npz with --train-npz / --test-npz: both scans train and are scored with the
    file's probe (a 1-mode 16 x 16 Gaussian with a phase ramp instead of the scans' 2-mode
    aperture), padded to N and scaled so that, through a unit object, it predicts each
    scan's mean total intensity (Parseval: k^2 sum|P|^2 = mean sum A^2)."""
    import torch
    from ptycho.formats.readers import read_dataset
    yy, xx = np.mgrid[:16, :16] - 8
    small = (np.exp(-(xx ** 2 + yy ** 2) / 18.0) * np.exp(0.4j * xx)).astype(np.complex64)
    np.savez(tmp_path / "probe.npz", probeGuess=small)
    out = tmp_path / "replaced"
    argv = ["--train-npz", str(scan_files["npz"]), "--test-npz", str(scan_files["cxi"]),
            "--probe-npz", str(tmp_path / "probe.npz"), "--output-dir", str(out), *TINY_MODEL]
    assert runner.main(argv) == 0
    padded = np.zeros((32, 32), np.complex128)
    padded[8:24, 8:24] = small

    def measured(path):
        amp = read_dataset(path, N=32).diffraction[:, 0].astype(np.float64)
        return np.mean(np.sum(amp ** 2, axis=(1, 2)))

    def expected(path):
        return np.sqrt(measured(path) / np.sum(np.abs(padded) ** 2)) * padded
    run = out / "runs" / "pinn_fno"
    ckpt = torch.load(run / "model.ckpt", map_location="cpu", weights_only=False)
    np.testing.assert_allclose(ckpt["state_dict"]["physics.probe"].numpy().reshape(32, 32),
                               expected(scan_files["npz"]), rtol=1e-5, atol=1e-5)
    with np.load(out / "recons" / "pinn_fno" / "recon.npz") as z:   # the scored scan's probe
        np.testing.assert_allclose(z["probe"], expected(scan_files["cxi"]), rtol=1e-5, atol=1e-5)
    data = json.loads((run / "config.json").read_text())["data"]
    assert data["probe_npz"] == str(tmp_path / "probe.npz")
    assert set(data["probe_scale_factor"]) == {"train", "test"}
    m = json.loads((run / "metrics.json").read_text())
    assert f"probe from --probe-npz {tmp_path / 'probe.npz'} (pad to 32 x 32), not the scan's" \
        in m["normalisation"]
    # a probe without intensity is refused in one line before anything is written
    np.savez(tmp_path / "zero.npz", probeGuess=np.zeros((16, 16), np.complex64))
    capsys.readouterr()
    never = tmp_path / "never"
    argv = ["--train-npz", str(scan_files["npz"]), "--probe-npz", str(tmp_path / "zero.npz"),
            "--output-dir", str(never), *TINY_MODEL]
    assert runner.main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: probe file '{tmp_path / 'zero.npz'}': cannot scale the probe to the patterns: "
        f"probe intensity 0, mean pattern intensity {measured(scan_files['npz']):.4g} "
        "(expected both > 0) "
        "[flag --probe-npz]"]
    assert not (never / "runs").exists()


def test_covered_box_is_fully_covered_and_maximal_on_a_disc():
    from ptycho.stitching import covered_box
    yy, xx = np.mgrid[:40, :40]
    cov = ((yy - 20) ** 2 + (xx - 20) ** 2 < 15 ** 2).astype(int) * 3  # counts, not booleans
    r0, c0, h, w = covered_box(cov)
    assert cov[r0:r0 + h, c0:c0 + w].all()
    assert h * w >= 0.55 * np.pi * 15 ** 2  # the inscribed square is 2/pi = 0.64 of the disc
    with pytest.raises(ValueError, match="no pixel of the canvas is covered"):
        covered_box(np.zeros((4, 4)))


@pytest.mark.iterative
def test_refine_probe_epochs_runs_lsqml_before_training(scan_files, tmp_path):
    from ptycho_torch.ptychi import import_ptychi
    import_ptychi()
    out = tmp_path / "refined"
    argv = ["--train-npz", str(scan_files["cxi"]), "--output-dir", str(out),
            "--refine-probe-epochs", "3", *TINY_MODEL]
    assert runner.main(argv) == 0
    cfg = json.loads((out / "runs" / "pinn_fno" / "config.json").read_text())
    ref = cfg["data"]["probe_update"]
    assert ref["route"] == "lsqml" and ref["reason"] == "--refine-probe-epochs was given"
    assert ref["epochs"] == 3 and ref["residual_after"]["amplitude_mae"] > 0
    assert 0 < ref["noise_floor_mae"] < ref["residual_after"]["amplitude_mae"]
    assert cfg["study"]["training"]["refine_probe_epochs"] == 3
    with np.load(out / "recons" / "pinn_fno" / "recon.npz") as z:   # the refined probe
        np.testing.assert_array_equal(z["probe"].shape, (2, 32, 32))
        assert z["positions_px"].shape == (70, 2)


@pytest.mark.iterative
def test_refine_positions_moves_the_stitching_positions(scan_files, tmp_path):
    from ptycho_torch.ptychi import import_ptychi
    import_ptychi()
    out = tmp_path / "positions"
    argv = ["--train-npz", str(scan_files["npz"]), "--output-dir", str(out),
            "--probe-update", "lsqml", "--refine-probe-epochs", "8", "--refine-positions",
            *TINY_MODEL]
    assert runner.main(argv) == 0
    cfg = json.loads((out / "runs" / "pinn_fno" / "config.json").read_text())
    pos = cfg["data"]["probe_update"]["positions"]
    before, after = np.asarray(pos["before_px"]), np.asarray(pos["after_px"])
    assert before.shape == after.shape == (70, 2) and pos["moved_rms_px"] > 0
    assert pos["test_corrected"] is True   # its rows are scored with registration
    with np.load(out / "recons" / "pinn_fno" / "recon.npz") as z:
        stitched_at = z["positions_px"]
    # the scan is also the test scan: it is stitched at the corrected positions
    np.testing.assert_allclose(np.sort(stitched_at, axis=0), np.sort(after, axis=0), atol=1e-4)


@pytest.mark.iterative
@pytest.mark.parametrize("flags, corrected", [([], True), (["--no-refine-positions"], False)])
def test_auto_corrects_a_files_positions_unless_told_not_to(scan_files, tmp_path, capsys,
                                                            flags, corrected):
    from ptycho_torch.ptychi import import_ptychi
    import_ptychi()
    out = tmp_path / "auto"
    argv = ["--train-npz", str(scan_files["npz"]), "--output-dir", str(out),
            "--probe-update", "auto", "--refine-probe-epochs", "8", *flags, *TINY_MODEL]
    assert runner.main(argv) == 0
    lines = [m for m in capsys.readouterr().err.splitlines() if "probe update (lsqml)" in m]
    record = json.loads((out / "runs" / "pinn_fno" / "config.json").read_text())
    if corrected:
        assert any("positions from epoch 1 (auto on a file; --no-refine-positions keeps them)"
                   in m for m in lines), lines
        assert record["data"]["probe_update"]["positions"]["moved_rms_px"] > 0
    else:
        assert any("positions kept (--refine-positions corrects them)" in m for m in lines), lines
        assert "positions" not in record["data"]["probe_update"]


@pytest.mark.iterative
def test_reconstruct_refine_lsqml_polishes_the_network_object(trained, scan_files, tmp_path):
    from ptycho_torch.ptychi import import_ptychi
    import_ptychi()
    ckpt = trained["npz"] / "runs" / "pinn_fno" / "model.ckpt"
    out = tmp_path / "polished"
    assert reconstruct_main(["--checkpoint", str(ckpt), "--data", str(scan_files["npz"]),
                             "--output-dir", str(out), "--refine", "lsqml",
                             "--refine-epochs", "5", "--device", "cpu"]) == 0
    net = json.loads((out / "metrics.json").read_text())
    pol = json.loads((out / "refined" / "metrics.json").read_text())
    assert pol["kind"] == "refined" and pol["epochs_completed"] == 5
    assert pol["data_residual"]["amplitude_mae"] < net["data_residual"]["amplitude_mae"]
    assert "refined/metrics.json" in net["note"]
    with np.load(out / "refined" / "recon.npz") as z:
        probe, polished = z["probe"], z["reconstruction"]
    # the probe keeps the scan's modes and total intensity; the product holds the polished object
    with np.load(scan_files["npz"]) as z:
        start = z["probeGuess"]
    assert probe.shape == (2, 32, 32)
    product = read_product(out / "product-out.h5")
    assert np.allclose(product["object"], polished)
    assert float(np.sum(np.abs(product["probe"]) ** 2)) > 0 and start.shape[-2:] == (32, 32)
