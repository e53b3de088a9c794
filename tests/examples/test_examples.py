"""The scripts under examples/ run as a user would copy them: each with --tiny, in this
process (one torch thread), writing what its docstring says."""
import json
import logging

import numpy as np
import pytest
from torch_fixtures import load_repo_file


def _example(name: str):
    return load_repo_file(f"examples/{name}.py")


@pytest.fixture
def kept_logging():
    """The CLI's logging setup (ptycho-reconstruct) replaces the project loggers' handlers:
    put them back afterwards."""
    loggers = [logging.getLogger(n) for n in ("ptycho", "ptycho_torch")]
    saved = [(list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    yield
    for lg, (handlers, level, propagate) in zip(loggers, saved):
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


def test_quick_study_trains_the_quick_preset_on_tiny_settings(tmp_path):
    out = tmp_path / "quick"
    m = _example("quick_study").run(["--tiny", "--num-threads", "1", "--output-dir", str(out)])
    assert m["ground_truth"] is True and m["stop_reason"] == "max_epochs"
    assert all(np.isfinite(m["ssim"])) and all(np.isfinite(m["psnr"]))
    study = json.loads((out / "runs" / m["model_id"] / "config.json").read_text())["study"]
    assert study["model"]["N"] == 32 and study["training"]["epochs"] == 1
    # the rest is the quick preset's
    assert (study["model"]["architecture"], study["model"]["input_transform"],
            study["model"]["generator_output_mode"]) == ("hybrid", "log1p", "amp_phase")
    assert study["run"]["preset"] == "quick"
    assert len(list((out / "datasets").glob("*/train.npz"))) == 1
    assert (out / "recons" / m["model_id"] / "recon.npz").is_file()


def test_own_scan_trains_on_a_cxi_file_and_reconstructs_it(tmp_path, kept_logging, capsys):
    out = tmp_path / "own"
    paths = _example("own_scan").run(["--tiny", "--num-threads", "1", "--output-dir", str(out)])
    assert (out / "scan.cxi").is_file()
    m = json.loads((paths["study"] / "runs" / "pinn_fno" / "metrics.json").read_text())
    assert m["ground_truth"] is False and m["ssim"] is None
    assert 0 < m["data_residual"]["amplitude_mae"] < 1
    recon = paths["recon"]
    for name in ("recon.npz", "product-out.h5", "metrics.json"):
        assert (recon / name).is_file(), name
    with np.load(recon / "recon.npz") as z:
        assert np.isfinite(z["reconstruction"]).all()
    assert "data residual (stitched object)" in capsys.readouterr().out


def test_python_api_builds_the_model_of_a_scan_and_predicts_every_pattern(tmp_path, capsys):
    patches = _example("python_api").run(["--tiny", "--output-dir", str(tmp_path / "api")])
    assert patches.shape == (60, 1, 32, 32) and patches.dtype == np.complex64
    assert np.isfinite(patches).all()
    out = capsys.readouterr().out
    assert "refused: unknown override key 'fno_widht'; did you mean 'fno_width'" in out
    assert "model: hybrid, width 8" in out
