"""The PyTorch side's configs under the names the runner's plan uses.

``ModelConfig`` (generator architecture and the ``fno_*`` hyperparameters),
``TrainingConfig``, ``DataConfig`` (values derived from the data) and ``InferenceConfig``
ARE the classes of the project's one config family (``ptycho.config.config``): the same
objects, not copies, so a value validated here is validated there and a default is
declared once. Build them from flat overrides with
:func:`ptycho_torch.config_factory.create_training_payload`.
"""
from ptycho.config.config import DataConfig, InferenceConfig, ModelConfig, TrainingConfig

__all__ = ["DataConfig", "InferenceConfig", "ModelConfig", "TrainingConfig"]
