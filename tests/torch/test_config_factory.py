"""Config factory: precedence, threading of the fno_* fields, unknown keys."""
import re

import pytest

from ptycho.config import CanonicalConfig, InferenceConfig, ModelConfig, TrainingConfig
from ptycho_torch import config_params as tp
from ptycho_torch.config_factory import apply_overrides, create_training_payload, valid_override_keys


def test_defaults_without_base_or_overrides():
    p = create_training_payload()
    assert p.canonical == CanonicalConfig()
    assert p.model_config == tp.ModelConfig()
    assert p.training_config.batch_size == 16 and p.data_config.input_scale == 1.0
    assert p.inference_config.infer_batch_size == 128


def test_precedence_overrides_over_base_over_defaults():
    base = CanonicalConfig(model=ModelConfig(fno_width=48, fno_modes=8),
                           training=TrainingConfig(epochs=7))
    p = create_training_payload(base, overrides={"fno_width": 24, "infer_batch_size": 9})
    assert p.model_config.fno_width == 24          # override wins
    assert p.model_config.fno_modes == 8           # base kept
    assert p.model_config.fno_blocks == 4          # default
    assert p.training_config.epochs == 7
    assert p.inference_config.infer_batch_size == 9
    assert p.canonical.model.fno_width == 24


@pytest.mark.parametrize("base", [ModelConfig(fno_blocks=3), (ModelConfig(fno_blocks=3), InferenceConfig())])
def test_partial_base(base):
    assert create_training_payload(base).model_config.fno_blocks == 3


def test_all_fno_fields_threaded():
    o = {"fno_modes": 6, "fno_width": 24, "fno_blocks": 3, "fno_cnn_blocks": 1}
    m = create_training_payload(overrides=o).model_config
    assert (m.fno_modes, m.fno_width, m.fno_blocks, m.fno_cnn_blocks) == (6, 24, 3, 1)


def test_unknown_key_names_key_and_closest():
    with pytest.raises(ValueError, match=re.escape("unknown override key 'fno_widht'; did you mean 'fno_width'")):
        create_training_payload(overrides={"fno_widht": 64})
    with pytest.raises(ValueError, match="unknown override key 'banana'"):
        apply_overrides(None, {"banana": 1})


def test_override_values_are_validated():
    with pytest.raises(ValueError, match=re.escape("ModelConfig.fno_modes=33 exceeds N//2=32")):
        create_training_payload(overrides={"fno_modes": 33})


def test_bad_base_type():
    with pytest.raises(ValueError, match="is not a canonical config"):
        create_training_payload(base={"fno_width": 3})


def test_data_keys_reach_data_config():
    p = create_training_payload(overrides={"input_scale": 2.5, "photon_scale": 7.0, "gridsize": 2})
    assert p.data_config.input_scale == 2.5 and p.data_config.photon_scale == 7.0
    assert p.data_config.channels == 4 and p.model_config.channels == 4
    assert "input_scale" in valid_override_keys()


def test_torch_configs_round_trip_and_refuse_unknown_keys():
    m = tp.ModelConfig(fno_width=20)
    assert tp.ModelConfig.from_dict(m.to_dict()) == m
    with pytest.raises(ValueError, match=re.escape("unknown TrainingConfig key 'epoch'; did you mean 'epochs'")):
        tp.TrainingConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match=re.escape("DataConfig.input_scale=0.0 is out of range")):
        tp.DataConfig(input_scale=0.0)
    with pytest.raises(ValueError, match="ModelConfig.fno_width=1"):
        tp.ModelConfig(fno_width=1)
