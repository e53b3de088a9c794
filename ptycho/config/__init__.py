"""The project's one config family (``config``), its validators and its CLI generator."""
from ptycho.config.config import (
    DataConfig,
    InferenceConfig,
    ModelConfig,
    RunConfig,
    SimulationConfig,
    TrainingConfig,
)
from ptycho.config.presets import from_preset
from ptycho.config.study_config import StudyConfig

__all__ = ["DataConfig", "InferenceConfig", "ModelConfig", "RunConfig", "SimulationConfig",
           "StudyConfig", "TrainingConfig", "from_preset"]
