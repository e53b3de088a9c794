"""Where computations run: the one place a device name is resolved (CPU threads:
:mod:`ptycho_torch.engine.threads`)."""
from __future__ import annotations

import torch

from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import StudyError
from ptycho_torch.core.precision import check_precision


def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' when available else 'cpu'; 'cuda' without CUDA is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no CUDA device is available (allowed here: auto, cpu)")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device={name!r} is not allowed (choose one of: 'auto', 'cpu', 'cuda')")
    return name


def check_device(cfg: StudyConfig) -> str:
    """The accelerator a study runs on, its precision and device count checked there; a
    refusal is a one-line :class:`StudyError` naming the flag."""
    try:
        accelerator = resolve_device(cfg.training.device)
    except ValueError as err:
        raise StudyError(f"{err} [flag --device]") from None
    try:
        check_precision(cfg.training.precision, accelerator)
    except ValueError as err:
        raise StudyError(f"{err} [flag --precision]") from None
    if accelerator == "cuda" and cfg.training.devices > torch.cuda.device_count():
        raise StudyError(f"TrainingConfig.devices={cfg.training.devices} but "
                         f"{torch.cuda.device_count()} CUDA device(s) are visible (allowed: "
                         f"1..{torch.cuda.device_count()} per node) [flag --devices]")
    return accelerator
