"""Canonical configs + overrides -> PyTorch configs.

Precedence: ``overrides`` > ``base`` canonical configs > dataclass defaults. Overrides are
a flat mapping of canonical field names (unique across ModelConfig, TrainingConfig and
InferenceConfig). An unknown key is an error that names it and the closest valid names;
no key is ever dropped silently.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Mapping

from ptycho.config.config import (
    CanonicalConfig, InferenceConfig, ModelConfig, TrainingConfig, field_names,
)
from ptycho.config.validation import unknown_key_error
from ptycho_torch import config_params as tp

_OWNERS = {"model": ModelConfig, "training": TrainingConfig, "inference": InferenceConfig}
# Data-derived values the runner knows only after loading data: not canonical fields.
DATA_KEYS = ("input_scale", "photon_scale")


@dataclass(frozen=True)
class TrainingPayload:
    """Everything needed to build and train a model, canonical and PyTorch side."""

    canonical: CanonicalConfig
    model_config: tp.ModelConfig
    data_config: tp.DataConfig
    training_config: tp.TrainingConfig
    inference_config: InferenceConfig


def valid_override_keys() -> tuple[str, ...]:
    keys = [k for cls in _OWNERS.values() for k in field_names(cls)]
    return tuple(keys) + DATA_KEYS


def _as_canonical(base) -> CanonicalConfig:
    if base is None:
        return CanonicalConfig()
    if isinstance(base, CanonicalConfig):
        return base
    parts = base if isinstance(base, (tuple, list)) else (base,)
    found = {}
    for part in parts:
        for name, cls in _OWNERS.items():
            if isinstance(part, cls):
                found[name] = part
                break
        else:
            raise ValueError(
                f"base={type(part).__name__} is not a canonical config (allowed: CanonicalConfig, "
                "ModelConfig, TrainingConfig, InferenceConfig or a tuple of them)")
    return CanonicalConfig(**found)


def apply_overrides(base, overrides: Mapping | None) -> CanonicalConfig:
    """Return the canonical bundle with ``overrides`` applied (validated)."""
    canonical = _as_canonical(base)
    overrides = dict(overrides or {})
    per_owner: dict[str, dict] = {name: {} for name in _OWNERS}
    valid = valid_override_keys()
    for key, value in overrides.items():
        if key in DATA_KEYS:
            continue
        for name, cls in _OWNERS.items():
            if key in field_names(cls):
                per_owner[name][key] = value
                break
        else:
            raise unknown_key_error("override key", str(key), valid)
    return CanonicalConfig(**{
        name: replace(getattr(canonical, name), **vals) if vals else getattr(canonical, name)
        for name, vals in per_owner.items()
    })


def create_training_payload(base=None, overrides: Mapping | None = None) -> TrainingPayload:
    """Build the PyTorch configs from canonical ``base`` plus flat ``overrides``.

    ``overrides`` may also carry the data-derived ``input_scale`` and ``photon_scale``.
    """
    overrides = dict(overrides or {})
    canonical = apply_overrides(base, overrides)
    m, t = canonical.model, canonical.training
    model_config = tp.ModelConfig(**asdict(m))
    data_config = tp.DataConfig(
        N=m.N, gridsize=m.gridsize, nphotons=t.nphotons, val_fraction=t.val_fraction,
        input_scale=float(overrides.get("input_scale", 1.0)),
        photon_scale=float(overrides.get("photon_scale", 1.0)))
    training_config = tp.TrainingConfig(**asdict(t))
    return TrainingPayload(canonical=canonical, model_config=model_config,
                           data_config=data_config, training_config=training_config,
                           inference_config=canonical.inference)
