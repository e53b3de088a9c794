"""Lightning helpers under the monorepo's names (Ptychodus imports this module)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["find_best_checkpoint"]


def find_best_checkpoint(run_dir) -> Path | None:
    """The model file a Ptychodus training run wrote in ``run_dir`` (``model.ckpt``: the
    weights training ended with, see :mod:`ptycho_torch.api.model_file`), or None."""
    path = Path(run_dir) / "model.ckpt"
    return path if path.is_file() else None
