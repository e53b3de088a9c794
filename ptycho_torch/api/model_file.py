"""The model file Ptychodus keeps: a Lightning checkpoint of plain values.

:func:`write_model_file` writes ``{state_dict, hyper_parameters, pytorch-lightning_version}``
(tensors, dicts, lists, strings and numbers only), so Ptychodus' own
``PtychoPINN_Lightning.load_from_checkpoint(path, ...)`` and ``torch.load(...,
weights_only=True)`` read it without unpickling any object. ``hyper_parameters`` holds the
module's configs (``model_config``, ``data_config``, ``training_config`` and, with a
learned probe, ``probe_config``), which rebuild the module, plus what Lightning does not
pass to ``__init__``: ``inference_config`` (how to stitch), ``ptychodus`` (the settings
it was trained with: ``mode`` and the four :mod:`ptycho_torch.config_params` records) and,
when set, ``reconstruct`` (:mod:`ptycho_torch.api.refine_plan`).

:func:`read_model_configs` returns the family configs of any checkpoint this project
writes (a ``ptycho-study`` ``model.ckpt`` too: its inference config is then the default).
"""
from __future__ import annotations

from pathlib import Path

import lightning
import torch

from ptycho.artifacts import atomic_path
from ptycho.config.config import DataConfig, InferenceConfig, ModelConfig, TrainingConfig
from ptycho.config.validation import StudyError
from ptycho_torch.model.checkpoint import load_checkpoint

__all__ = ["read_model_configs", "write_model_file"]


def write_model_file(path, module, inference: InferenceConfig, extra: dict | None = None
                     ) -> Path:
    """Write ``module``'s weights and configs to ``path`` atomically (see the module
    docstring); ``extra`` adds plain-valued ``hyper_parameters`` entries."""
    hp = {k: (dict(v) if hasattr(v, "keys") else v) for k, v in module.hparams.items()}
    hp["inference_config"] = inference.to_dict()
    hp.update(extra or {})
    ckpt = {"state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
            "hyper_parameters": hp,
            "pytorch-lightning_version": lightning.__version__}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path


def read_model_configs(path) -> tuple[DataConfig, ModelConfig, TrainingConfig, InferenceConfig]:
    """``(data, model, training, inference)`` family configs of a checkpoint, read weights
    only; a file without them is refused in one line naming it."""
    ckpt = load_checkpoint(path, flag="model file")
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or not {"model_config", "data_config",
                                        "training_config"} <= set(hp):
        raise StudyError(f"checkpoint '{path}': holds no model_config, data_config and "
                         "training_config (expected a model.ckpt written by ptychopinn-torch)")
    inference = hp.get("inference_config")
    return (DataConfig.from_dict(hp["data_config"]), ModelConfig.from_dict(hp["model_config"]),
            TrainingConfig.from_dict(hp["training_config"]),
            InferenceConfig.from_dict(inference) if inference else InferenceConfig())
