"""Study artifact layout and atomic writes.

Every artifact is written to a hidden temporary name in its final directory
(``.<name>.tmp-<pid>``), fsync'ed, and renamed over the final name with ``os.replace``:
a reader (or a run killed at any moment) sees the old file or the complete new one,
never a partial file, and a failed write leaves no temporary file behind.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class StudyLayout:
    """Where one model's artifacts live under a study's output directory.

    ``runs/<model_id>/{metrics,history,config}.json, model.ckpt``,
    ``recons/<model_id>/recon.npz``, ``visuals/<model_id>_*.png``; training state
    (checkpoints, CSV log) under ``.work/<model_id>`` until the study finishes.
    """

    output_dir: Path
    model_id: str

    @property
    def run_dir(self) -> Path:
        return self.output_dir / "runs" / self.model_id

    @property
    def recon_dir(self) -> Path:
        return self.output_dir / "recons" / self.model_id

    @property
    def visuals_dir(self) -> Path:
        return self.output_dir / "visuals"

    @property
    def work_dir(self) -> Path:
        return self.output_dir / ".work" / self.model_id

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.json"

    def is_finished(self) -> bool:
        """A study is finished when its metrics.json (always written last) exists."""
        return self.metrics_path.is_file()


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean(obj):
    """Replace non-finite floats by strings so the JSON is strict ('inf', 'nan')."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success fsync it and rename it over
    ``path`` (atomic on POSIX). On any error the temporary file is removed and ``path``
    is untouched. ``suffix`` keeps an extension some writers need (``.npz``, ``.png``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.name[: -len(suffix)] if suffix and path.name.endswith(suffix) else path.name
    tmp = path.with_name(f".{stem}.tmp-{os.getpid()}{suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(path, obj) -> Path:
    text = json.dumps(_clean(json.loads(json.dumps(obj, default=_json_default))), indent=2,
                      allow_nan=False)
    return write_text_atomic(path, text + "\n")


def save_npz_atomic(path, **arrays) -> Path:
    with atomic_path(path, ".npz") as tmp:
        np.savez(tmp, **arrays)
    return Path(path)


def copy_atomic(src, dst) -> Path:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def save_figure_atomic(fig, path, dpi: int = 110) -> Path:
    path = Path(path)
    with atomic_path(path, path.suffix) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    return path
