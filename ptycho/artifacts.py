"""Study artifact layout and atomic writes (temporary name, then rename)."""
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


def write_json_atomic(path: Path, obj) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    text = json.dumps(_clean(json.loads(json.dumps(obj, default=_json_default))), indent=2,
                      allow_nan=False)
    tmp.write_text(text + "\n")
    os.replace(tmp, path)
    return path


def save_npz_atomic(path: Path, **arrays) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def copy_atomic(src: Path, dst: Path) -> Path:
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return dst


def save_figure_atomic(fig, path: Path, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    os.replace(tmp, path)
    return path
