"""Canonical configuration dataclasses (no framework imports)."""
from ptycho.config.config import (
    ARCHITECTURES,
    CanonicalConfig,
    InferenceConfig,
    ModelConfig,
    TrainingConfig,
)

__all__ = ["ARCHITECTURES", "CanonicalConfig", "InferenceConfig", "ModelConfig", "TrainingConfig"]
