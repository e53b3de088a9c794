"""The runner's contract as its users call it: the flat TorchRunnerConfig, the config
factory, config_params, run_grid_lines_torch / run_torch_inference, --probe-npz with a
probe-only file, and the preset/config pair."""
import ast
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ptycho.config import config as cc
from ptycho.config import presets
from ptycho.config import study_config
from ptycho.config.cli import config_from_argv
from ptycho.config.config import InferenceConfig
from ptycho.config.presets import from_preset
from ptycho.config.study_config import StudyConfig
from ptycho.config.runner_config import TorchRunnerConfig as FlatFromConfig
from ptycho.config.validation import ConfigError, StudyError
from ptycho.probe_scaling import scale_probe
from ptycho.probes import probe_fill

REPO = Path(__file__).resolve().parents[2]
TINY = dict(N=32, object_size=64, n_lines=40, train_stride=4, test_stride=8, n_train_objects=1,
            n_test_objects=1, epochs=1, batch_size=16, fno_width=8, fno_modes=4, fno_blocks=1,
            fno_cnn_blocks=1, progress_bar=False)


# ------------------------------------------------------------- the issue's three calls
def test_the_three_calls_of_the_issue_work_as_written():
    from grid_lines_torch_runner import TorchRunnerConfig, run_torch_inference
    cfg = TorchRunnerConfig(infer_batch_size=64)
    assert cfg.infer_batch_size == 64
    assert TorchRunnerConfig is FlatFromConfig

    class Doubler(torch.nn.Module):
        def forward_predict(self, x, positions, probe, input_scale_factor):
            return (2 * x).to(torch.complex64)

    test_data = {"diffraction": np.ones((5, 1, 8, 8), np.float32)}
    out = run_torch_inference(Doubler(), test_data, TorchRunnerConfig())
    np.testing.assert_array_equal(out, np.full((5, 1, 8, 8), 2, np.complex64))
    from ptycho_torch.config_factory import create_training_payload
    assert callable(create_training_payload)


def test_flat_keywords_construct_and_read_back_as_attributes(tmp_path):
    from grid_lines_torch_runner import TorchRunnerConfig
    cfg = TorchRunnerConfig(train_npz=str(tmp_path / "a.npz"), test_npz=str(tmp_path / "b.npz"),
                            output_dir=str(tmp_path / "out"), architecture="fno",
                            infer_batch_size=64, fno_width=32, epochs=5)
    assert (cfg.architecture, cfg.infer_batch_size, cfg.fno_width, cfg.epochs) == \
        ("fno", 64, 32, 5)
    study = cfg.to_study()
    assert study.inference.infer_batch_size == 64 and study.model.fno_width == 32
    assert study.training.epochs == 5 and study.run.train_npz == str(tmp_path / "a.npz")
    # the sections read through, so StudyConfig code takes it unchanged
    assert cfg.model == study.model and cfg.inference == study.inference
    assert cfg.model_id == study.model_id
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3


@pytest.mark.parametrize("kw,message", [
    (dict(fno_width=0), "ModelConfig.fno_width=0 is out of range (allowed: 4..512)"),
    (dict(fno_modes=-1), "ModelConfig.fno_modes=-1 is out of range (allowed: >= 1)"),
    (dict(fno_blocks=0), "ModelConfig.fno_blocks=0 is out of range (allowed: 1..16)"),
    (dict(infer_batch_size=0), "InferenceConfig.infer_batch_size=0 is out of range"),
])
def test_bad_values_are_refused_by_field_on_construction(kw, message):
    from ptycho_torch.config_factory import create_training_payload
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        FlatFromConfig(**kw)
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        create_training_payload(overrides=kw)


def test_unknown_keys_are_refused_with_the_closest_field():
    from ptycho_torch.config_factory import create_training_payload
    with pytest.raises(ValueError, match=r"^unknown TorchRunnerConfig field 'infer_batchsize'; "
                                         r"did you mean 'infer_batch_size'"):
        FlatFromConfig(infer_batchsize=64)
    with pytest.raises(ValueError, match=r"^unknown override key 'fno_widht'; did you mean "
                                         r"'fno_width'"):
        create_training_payload(overrides={"fno_widht": 64})


def test_cross_field_rules_hold_in_the_flat_form():
    with pytest.raises(ConfigError, match=r"^RunConfig\.cxi_translation_sign=-1 needs a CXI "
                                          r"file in --train-npz"):
        FlatFromConfig(cxi_translation_sign=-1)
    with pytest.raises(ConfigError, match=r"cxi_translation_sign=2"):
        FlatFromConfig(cxi_translation_sign=2)


# ------------------------------------------------------- one family, defaults declared once
def test_every_flat_field_is_a_study_leaf_with_the_same_default_and_help():
    flat = {f.name: f for f in dataclasses.fields(FlatFromConfig)}
    leaves = list(study_config.leaf_fields())
    assert list(flat) == [f.name for _, f in leaves]
    for section, f in leaves:
        g = flat[f.name]
        assert g.default is f.default, f.name          # the same object: declared once
        assert g.metadata["help"] is f.metadata["help"]
        assert g.metadata["section"] == section
        assert dict(g.metadata.get("choices", ()) and {"c": g.metadata["choices"]}) == \
            dict(f.metadata.get("choices", ()) and {"c": f.metadata["choices"]})


def test_runner_config_module_declares_no_field_of_its_own():
    """No annotated assignment (a field declaration) and no literal default in the module:
    the flat class is generated from the sections."""
    tree = ast.parse((REPO / "ptycho/config/runner_config.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.AnnAssign)]


@pytest.mark.parametrize("study", [
    StudyConfig(), from_preset("quick"), from_preset("paper"),
    from_preset("none", architecture="hybrid", fno_width=16, infer_batch_size=7,
                stitch="positions", seed=3, nphotons=1e5),
], ids=["default", "quick", "paper", "custom"])
def test_from_study_and_to_study_round_trip_exactly(study):
    flat = FlatFromConfig.from_study(study)
    assert flat.to_study() == study
    assert FlatFromConfig.from_study(flat.to_study()) == flat
    assert flat.flat() == study.flat()


def test_preset_keyword_applies_under_the_explicit_ones():
    cfg = FlatFromConfig(preset="quick", epochs=2)
    assert cfg.to_study() == from_preset("quick", epochs=2)
    assert cfg.replace(fno_width=16).fno_width == 16


# ---------------------------------------------------------------------- config_params
def test_config_params_hold_the_runner_fields_beside_ptychodus_settings():
    """``config_params`` is the monorepo's record set (what Ptychodus builds); it carries the
    seed's generator fields, which the translation hands to the family unchanged."""
    from ptycho_torch import config_params
    from ptycho_torch.api.translate import translate
    m = config_params.ModelConfig(architecture="fno", fno_modes=6, fno_width=64, fno_blocks=3,
                                  fno_cnn_blocks=1, cbam_encoder=False)
    ov = translate(config_params.DataConfig(N=64), m, config_params.TrainingConfig(),
                   config_params.InferenceConfig()).overrides
    study = FlatFromConfig(**ov, train_npz="scan.npz").to_study()
    assert (study.model.architecture, study.model.fno_modes, study.model.fno_width,
            study.model.fno_blocks, study.model.fno_cnn_blocks) == ("fno", 6, 64, 3, 1)
    assert config_params.ModelConfig is not cc.ModelConfig


# ------------------------------------------------------------------------ the factory
@pytest.mark.parametrize("architecture", ["fno", "hybrid", "cnn"])
def test_factory_payload_reaches_the_generator(architecture):
    from ptycho_torch.config_factory import create_training_payload
    from ptycho_torch.model import PtychoPINN_Lightning
    payload = create_training_payload(overrides=dict(
        architecture=architecture, N=64, gridsize=2, fno_width=16, fno_modes=6, fno_blocks=3,
        fno_cnn_blocks=2))
    assert payload.model_config.fno_width == 16 and payload.training_config is not None
    model = PtychoPINN_Lightning(payload.model_config, payload.data_config,
                                 payload.training_config)
    g = model.generator
    assert g.N == 64
    x = torch.zeros(1, 4, 64, 64)
    assert g(x).shape[:2] == (1, 4) if architecture != "cnn" else True
    if architecture == "fno":
        assert g.lift.in_channels == 4 and g.lift.out_channels == 16
        assert len(g.blocks) == 3 and len(g.refiners) == 2
        assert tuple(g.blocks[0].spectral.weight.shape[-2:]) == (6, 6 // 2 + 1)
    elif architecture == "hybrid":
        assert g.lift.in_channels == 4 and g.lift.out_channels == 16
        assert len(g.encoder) == 3 and len(g.bottleneck_blocks) == 2
        assert tuple(g.encoder[0][0].spectral.weight.shape[-2:]) == (6, 6 // 2 + 1)
    else:
        assert g.encoder[0].in_channels == 4


def test_the_study_builds_its_model_through_the_factory():
    from ptycho_torch import config_factory
    from ptycho_torch.engine import training
    assert training.build_model is config_factory.build_model


def test_factory_reads_the_training_file(tiny_paths, tmp_path):
    from ptycho_torch.config_factory import create_training_payload
    payload = create_training_payload(str(tiny_paths.train), str(tmp_path / "o"),
                                      overrides={"architecture": "cnn", "N": 32})
    assert payload.study.run.train_npz == str(tiny_paths.train)
    assert payload.study.run.output_dir == str(tmp_path / "o")
    assert payload.data_config.input_scale > 0 and payload.train is not None
    model = payload.build_model()
    np.testing.assert_allclose(model.physics.probe.numpy().reshape(payload.train.probe.shape),
                               payload.train.probe,
                               rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match=r"^override output_dir='x' contradicts the argument"):
        create_training_payload(None, "y", overrides={"output_dir": "x"})


# ------------------------------------------------------ run_grid_lines_torch / inference
def test_run_grid_lines_torch_takes_both_config_forms(tmp_path):
    import grid_lines_torch_runner as runner
    a = runner.run_grid_lines_torch(FlatFromConfig(output_dir=str(tmp_path / "a"),
                                                   architecture="cnn", **TINY))
    b = runner.run_grid_lines_torch(from_preset("none", output_dir=str(tmp_path / "b"),
                                                architecture="cnn", **TINY))
    ma = json.loads((tmp_path / "a/runs/pinn_cnn/metrics.json").read_text())
    mb = json.loads((tmp_path / "b/runs/pinn_cnn/metrics.json").read_text())
    assert a.keys() == b.keys()
    assert ma["model_id"] == mb["model_id"] == "pinn_cnn"
    for key in ("final_train_loss", "ssim", "data_residual", "n_parameters"):
        assert ma[key] == mb[key], key


def test_run_torch_inference_takes_three_config_forms(tiny_data, true_patch_model):
    from ptycho_torch.engine.inference import run_torch_inference
    _, test = tiny_data
    model = true_patch_model(test)
    outs = [run_torch_inference(model, test, c) for c in
            (FlatFromConfig(infer_batch_size=5), from_preset("none", infer_batch_size=5),
             InferenceConfig(infer_batch_size=5))]
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    with pytest.raises(TypeError, match=r"^run_torch_inference: cfg is a dict without "
                                        r"infer_batch_size"):
        run_torch_inference(model, test, {})


# ---------------------------------------------------------- --probe-npz probe-only files
def _compact_probe(size=64, sigma=3.0):
    y, x = np.mgrid[:size, :size] - size / 2
    return (np.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2)) * np.exp(0.3j * x / size)
            ).astype(np.complex128)


@pytest.mark.parametrize("key", ["probeGuess", "probe"])
@pytest.mark.parametrize("N", [32, 64, 128])
def test_probe_only_npz_is_read_at_smaller_equal_and_larger_N(tmp_path, key, N):
    from ptycho.inputs import read_probe_file
    probe = _compact_probe()
    path = tmp_path / "probe.npz"
    np.savez(path, **{key: probe})
    got = read_probe_file(str(path), N)
    assert got.shape == (N, N) and got.dtype == np.complex64
    energy = np.sum(np.abs(probe) ** 2)
    assert np.sum(np.abs(got) ** 2) == pytest.approx(energy, rel=1e-5)
    # centred: the peak stays at the centre pixel
    assert np.unravel_index(np.argmax(np.abs(got)), got.shape) == (N // 2, N // 2)


def test_the_experimental_run1084_probe_fits_64_and_128_and_is_refused_at_32():
    from ptycho.inputs import read_probe_file
    path = str(REPO / "data/run1084_recon3_postPC.npz")
    raw = np.load(path, allow_pickle=False)["probeGuess"]
    np.testing.assert_array_equal(read_probe_file(path, 64), raw.astype(np.complex64))
    big = read_probe_file(path, 128)
    np.testing.assert_array_equal(big[32:96, 32:96], raw.astype(np.complex64))
    assert not big[:32].any() and not big[96:].any()
    with pytest.raises(StudyError, match=re.escape(
            "probe of size 64 keeps only 71.6 % of its intensity in the central 32 x 32 window "
            "(expected >= 99 %; choose N >= 64 or a probe that fits) [flag --probe-npz]")):
        read_probe_file(path, 32)


def test_the_experimental_probe_prepared_the_reference_way_at_128():
    from ptycho.inputs import read_probe_file
    path = str(REPO / "data/run1084_recon3_postPC.npz")
    raw = np.load(path, allow_pickle=False)["probeGuess"]
    ext = read_probe_file(path, 128, "pad_extrapolate", 0.0)
    # the amplitude inside is the file's, outside the edge repeated
    np.testing.assert_allclose(np.abs(ext[32:96, 32:96]), np.abs(raw), rtol=1e-5)
    np.testing.assert_allclose(np.abs(ext[0, 32:96]), np.abs(raw[0]), rtol=1e-5)
    with pytest.raises(StudyError, match=re.escape(
            "probe of size 64 is larger than N=32 (probe scale mode 'interpolate' only "
            "enlarges; use 'pad' to cut it, or N >= 64) [flag --probe-npz]")):
        read_probe_file(path, 32, "interpolate")


def test_a_probe_scale_mode_needs_a_probe_file(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(
            "RunConfig.probe_scale_mode='pad_extrapolate' needs --probe-npz (allowed: pad "
            "without a probe file)")):
        config_from_argv(["--probe-scale-mode", "pad_extrapolate"])


def test_a_tiny_cli_run_with_a_probe_only_npz(tmp_path):
    import grid_lines_torch_runner as runner
    path = tmp_path / "probe.npz"
    np.savez(path, probeGuess=_compact_probe(size=16))
    rc = runner.main(["--N", "32", "--object-size", "64", "--n-lines", "40", "--train-stride",
                      "4", "--test-stride", "8", "--n-train-objects", "1", "--n-test-objects",
                      "1", "--epochs", "1", "--batch-size", "16", "--architecture", "cnn",
                      "--no-progress-bar", "--probe-npz", str(path), "--probe-scale-mode",
                      "pad_preserve", "--output-dir", str(tmp_path / "out")])
    assert rc in (0, None)
    cfg = json.loads((tmp_path / "out/runs/pinn_cnn/config.json").read_text())
    assert cfg["study"]["run"]["probe_npz"] == str(path)
    assert cfg["data"]["probe_scale_mode"] == "pad_preserve"
    metrics = json.loads((tmp_path / "out/runs/pinn_cnn/metrics.json").read_text())
    assert metrics["probe_fill"] == pytest.approx(
        probe_fill(scale_probe(_compact_probe(size=16), 32, "pad_preserve")), rel=1e-6)


# ------------------------------------------------------------ CLI: sign flag, preset+config
def test_cxi_translation_sign_flag_parses_and_reaches_the_run_section(tmp_path):
    cfg = config_from_argv(["--train-npz", str(tmp_path / "s.cxi"), "--cxi-translation-sign",
                            "-1"])
    assert cfg.run.cxi_translation_sign == -1
    with pytest.raises(StudyError, match=r"^argument --cxi-translation-sign: invalid choice: "
                                         r"2 \(choose from 1, -1\)"):
        config_from_argv(["--cxi-translation-sign", "2"])


def _config_file(tmp_path, study: dict) -> str:
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"study": study}))
    return str(p)


def test_preset_applies_under_a_partial_config_file(tmp_path):
    path = _config_file(tmp_path, {"training": {"loss": "poisson", "seed": 4}})
    cfg = config_from_argv(["--preset", "quick", "--config", path])
    assert cfg == from_preset("quick", loss="poisson", seed=4)
    assert cfg.run.preset == "quick" and cfg.model.fno_width == 8  # the preset's value
    # explicit flags override both
    assert config_from_argv(["--preset", "quick", "--config", path, "--epochs", "2"]) == \
        from_preset("quick", loss="poisson", seed=4, epochs=2)


def test_preset_contradicting_a_full_config_file_is_refused(tmp_path):
    path = _config_file(tmp_path, StudyConfig().to_dict())
    quick = presets.PRESET_VALUES["quick"]
    key = next(k for k, v in quick.items() if StudyConfig().flat()[k] != v)
    with pytest.raises(StudyError, match=r"^--preset quick conflicts with --config '.*': the "
                                         rf"file sets {key}="):
        config_from_argv(["--preset", "quick", "--config", path])
    # a file written by a quick study carries its preset and its values: accepted as is
    q = _config_file(tmp_path, from_preset("quick").to_dict())
    assert config_from_argv(["--preset", "quick", "--config", q]) == from_preset("quick")
    assert config_from_argv(["--config", q]) == from_preset("quick")


# ----------------------------------------- type checks without postponed annotations (5.11)
# This module deliberately has no ``from __future__ import annotations``: the field types
# below are real classes, not strings, as in a user's module.
@dataclasses.dataclass
class _PlainSection:
    flag_on: bool = dataclasses.field(default=False, metadata={"help": "a switch"})
    count: int = dataclasses.field(default=3, metadata={"help": "an int"})
    rate: float = dataclasses.field(default=0.5, metadata={"help": "a float"})
    name: "str | None" = dataclasses.field(default=None, metadata={"help": "a name"})


def test_cli_fields_parse_real_types_without_postponed_annotations():
    import argparse

    from ptycho.config.cli import _add_fields
    assert _PlainSection.__dataclass_fields__["count"].type is int  # not the string "int"
    p = argparse.ArgumentParser()
    _add_fields({"plain": p}, "plain", _PlainSection, ())
    ns = p.parse_args(["--flag-on", "--count", "7", "--rate", "0.25", "--name", "x"])
    assert (ns.flag_on, ns.count, ns.rate, ns.name) == (True, 7, 0.25, "x")
    assert type(ns.count) is int and type(ns.rate) is float
    with pytest.raises(SystemExit):
        p.parse_args(["--count", "1.5"])
