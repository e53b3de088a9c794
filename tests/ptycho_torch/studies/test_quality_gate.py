"""The reference study's quality gate (contract in ptycho_torch/studies/quality_gate.py).

The gate itself is ``-m slow`` (about an hour on a 2-core CPU, minutes on a GPU; the GPU
check runs it as a step); the contract checks below are fast.
"""
import json

import pytest

from ptycho.config.presets import from_preset
from ptycho_torch.studies import quality_gate as qg


@pytest.mark.slow
def test_quality_gate(tmp_path):
    from ptycho_torch.pipeline.study import run_study
    cfg = qg.quality_gate_config(tmp_path / "gate")
    run_study(cfg)
    metrics = json.loads((tmp_path / "gate" / "runs" / cfg.model_id / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 5
    amp, phase, passed = qg.verdict(metrics)
    assert amp >= qg.AMP_SSIM_MIN, f"amplitude SSIM {amp:.4f} < {qg.AMP_SSIM_MIN}"
    assert phase >= qg.PHASE_SSIM_MIN, f"phase SSIM {phase:.4f} < {qg.PHASE_SSIM_MIN}"
    assert passed


def test_contract_is_the_paper_preset_with_five_epochs_on_one_object(tmp_path):
    cfg = qg.quality_gate_config(tmp_path)
    flat = cfg.flat()
    for key, value in qg.GATE_CONTRACT.items():
        assert flat[key] == value, key
    paper = from_preset("paper", epochs=5, n_train_objects=1, output_dir=str(tmp_path))
    assert qg.contract_differences(paper) == {}
    assert cfg.run.preset == "paper" and cfg.model_id == "pinn_hybrid"
    # one training object of 67 x 67 = 4 489 patterns
    n_side = (cfg.simulation.object_size - cfg.model.N) // cfg.simulation.train_stride + 1
    assert n_side ** 2 == qg.GATE_PATTERNS == 4489
    assert (qg.AMP_SSIM_MIN, qg.PHASE_SSIM_MIN) == (0.84, 0.94)


def test_overrides_are_reported_as_leaving_the_contract(tmp_path):
    cfg = qg.config_from_argv(["--epochs", "1", "--device", "cpu", "--output-dir", str(tmp_path)])
    assert cfg.training.epochs == 1 and cfg.run.output_dir == str(tmp_path)
    assert qg.contract_differences(cfg) == {"epochs": 1}


def test_verdict():
    assert qg.verdict({"ssim": [0.85, 0.95]}) == (0.85, 0.95, True)
    assert qg.verdict({"ssim": [0.83, 0.99]})[2] is False
    assert qg.verdict({"ssim": [0.99, 0.93]})[2] is False
    assert qg.verdict({"ssim": None})[2] is False


def test_cli_refuses_bad_flags_in_one_line(capsys):
    assert qg.main(["--preset", "quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unknown flag '--preset'")


def test_the_probe_is_outside_the_contract_and_named_by_the_verdict(tmp_path):
    cfg = qg.config_from_argv(["--probe-npz", "data/run1084_recon3_postPC.npz",
                               "--probe-scale-mode", "pad_extrapolate",
                               "--output-dir", str(tmp_path)])
    assert qg.contract_differences(cfg) == {}
    assert qg.probe_description(cfg) == ("data/run1084_recon3_postPC.npz (pad_extrapolate, "
                                         "smoothing 0.5 px)")
    assert qg.probe_description(qg.quality_gate_config(tmp_path)) == (
        "the synthetic defocused aperture")
