"""Canonical config validation: every field's bad value gives a named one-line error."""
import re

import pytest

from ptycho.config import CanonicalConfig, InferenceConfig, ModelConfig, TrainingConfig


def test_defaults_follow_the_reference():
    m, t, i = ModelConfig(), TrainingConfig(), InferenceConfig()
    assert (m.fno_modes, m.fno_width, m.fno_blocks, m.fno_cnn_blocks) == (12, 32, 4, 2)
    assert (m.N, m.gridsize, m.generator_output_mode) == (64, 1, "real_imag")
    assert (t.batch_size, t.learning_rate, t.loss, t.nphotons) == (16, 1e-3, "mae", 1e9)
    assert i.infer_batch_size == 128
    assert ModelConfig(gridsize=2).channels == 4


def test_fno_modes_message_names_field_value_and_limit():
    with pytest.raises(ValueError, match=re.escape(
            "ModelConfig.fno_modes=40 exceeds N//2=32 for N=64 (allowed: 1..32)")):
        ModelConfig(fno_modes=40)
    assert ModelConfig(N=128, fno_modes=40).fno_modes == 40


MODEL_BAD = [
    ("N", 48, "ModelConfig.N=48 is not allowed (choose one of: 16, 32, 64, 128, 256)"),
    ("gridsize", 3, "ModelConfig.gridsize=3 is not allowed (choose one of: 1, 2)"),
    ("architecture", "unet", "ModelConfig.architecture='unet' is not allowed (choose one of: 'cnn', 'fno', 'hybrid')"),
    ("fno_modes", 0, "ModelConfig.fno_modes=0 is out of range (allowed: >= 1)"),
    ("fno_modes", 2.5, "ModelConfig.fno_modes=2.5 must be an integer"),
    ("fno_width", 2, "ModelConfig.fno_width=2 is out of range (allowed: 4..512)"),
    ("fno_blocks", 0, "ModelConfig.fno_blocks=0 is out of range (allowed: 1..16)"),
    ("fno_cnn_blocks", -1, "ModelConfig.fno_cnn_blocks=-1 is out of range (allowed: 0..16)"),
    ("n_filters_scale", 0, "ModelConfig.n_filters_scale=0 is out of range (allowed: 1..16)"),
    ("generator_output_mode", "polar", "ModelConfig.generator_output_mode='polar' is not allowed"),
    ("overlap_constraint", "yes", "ModelConfig.overlap_constraint='yes' must be true or false"),
]

TRAINING_BAD = [
    ("nphotons", 0, "TrainingConfig.nphotons=0 is out of range (allowed: > 0"),
    ("nphotons", float("nan"), "TrainingConfig.nphotons=nan must be a finite number"),
    ("batch_size", 0, "TrainingConfig.batch_size=0 is out of range (allowed: 1..65536)"),
    ("epochs", 0, "TrainingConfig.epochs=0 is out of range (allowed: 1..100000)"),
    ("learning_rate", -1e-3, "TrainingConfig.learning_rate=-0.001 is out of range (allowed: > 0 and <= 1)"),
    ("loss", "mse", "TrainingConfig.loss='mse' is not allowed (choose one of: 'mae', 'poisson')"),
    ("seed", -1, "TrainingConfig.seed=-1 is out of range"),
    ("optimizer", "sgd", "TrainingConfig.optimizer='sgd' is not allowed"),
    ("weight_decay", -0.1, "TrainingConfig.weight_decay=-0.1 is out of range (allowed: 0..1)"),
    ("scheduler", "cosine", "TrainingConfig.scheduler='cosine' is not allowed"),
    ("plateau_factor", 1.0, "TrainingConfig.plateau_factor=1.0 is out of range"),
    ("plateau_patience", -1, "TrainingConfig.plateau_patience=-1 is out of range"),
    ("min_lr", -1.0, "TrainingConfig.min_lr=-1.0 is out of range"),
    ("val_fraction", 0.0, "TrainingConfig.val_fraction=0.0 is out of range (allowed: > 0 and <= 0.5)"),
    ("val_fraction", 0.9, "TrainingConfig.val_fraction=0.9 is out of range"),
    ("early_stopping_patience", -2, "TrainingConfig.early_stopping_patience=-2 is out of range"),
    ("max_train_patterns", -5, "TrainingConfig.max_train_patterns=-5 is out of range"),
    ("device", "tpu", "TrainingConfig.device='tpu' is not allowed (choose one of: 'auto', 'cpu', 'cuda')"),
    ("devices", 0, "TrainingConfig.devices=0 is out of range"),
    ("strategy", "fsdp", "TrainingConfig.strategy='fsdp' is not allowed"),
    ("deterministic", 1, "TrainingConfig.deterministic=1 must be true or false"),
]


@pytest.mark.parametrize("field,value,message", MODEL_BAD)
def test_model_config_errors(field, value, message):
    with pytest.raises(ValueError) as info:
        ModelConfig(**{field: value})
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("field,value,message", TRAINING_BAD)
def test_training_config_errors(field, value, message):
    with pytest.raises(ValueError) as info:
        TrainingConfig(**{field: value})
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_inference_config_errors():
    with pytest.raises(ValueError, match=re.escape("InferenceConfig.infer_batch_size=0 is out of range")):
        InferenceConfig(infer_batch_size=0)
    with pytest.raises(ValueError, match="must be an integer"):
        InferenceConfig(infer_batch_size=True)


def test_configs_are_frozen_and_bundle_checks_types():
    m = ModelConfig()
    with pytest.raises(Exception):
        m.fno_width = 64  # frozen
    with pytest.raises(ValueError, match=re.escape("CanonicalConfig.model must be a ModelConfig")):
        CanonicalConfig(model=TrainingConfig())
    assert CanonicalConfig().to_dict()["model"]["fno_width"] == 32
