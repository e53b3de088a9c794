"""Study artifact layout and atomic writes.

Every artifact is written to a hidden temporary name in its final directory
(``.<name>.tmp-<pid>``), fsync'ed, and renamed over the final name with ``os.replace``:
a reader (or a run killed at any moment) sees the old file or the complete new one,
never a partial file, and a failed write leaves no temporary file behind.
"""
from __future__ import annotations

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


def _replace_durably(tmp: Path, path: Path) -> None:
    """fsync ``tmp`` then rename it over ``path`` (the rename is atomic on POSIX)."""
    try:
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, obj) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    text = json.dumps(_clean(json.loads(json.dumps(obj, default=_json_default))), indent=2,
                      allow_nan=False)
    try:
        tmp.write_text(text + "\n")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _replace_durably(tmp, path)
    return path


def save_npz_atomic(path: Path, **arrays) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.npz")
    try:
        np.savez(tmp, **arrays)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _replace_durably(tmp, path)
    return path


def copy_atomic(src: Path, dst: Path) -> Path:
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    try:
        shutil.copyfile(src, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _replace_durably(tmp, dst)
    return dst


def save_figure_atomic(fig, path: Path, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _replace_durably(tmp, path)
    return path
