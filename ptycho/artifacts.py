"""Study artifact layout and atomic writes.

Every artifact is written to a hidden temporary name in its final directory
(``.<name>.tmp-<pid>``), fsync'ed, and renamed over the final name with ``os.replace``:
a reader (or a run killed at any moment) sees the old file or the complete new one,
never a partial file, and a failed write leaves no temporary file behind.
:func:`atomic_dir` is the same for a whole output folder: everything is written into a
hidden temporary folder, which becomes the target only when the work succeeded.
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


@contextlib.contextmanager
def atomic_dir(path, owned=(), last: str = "metrics.json"):
    """Yield an empty temporary folder that becomes the folder ``path`` when the block
    succeeds; on any error (an exception, Ctrl-C) it is removed and ``path`` is as it was.

    An absent ``path``: the temporary folder is ``.<name>.tmp-<pid>`` in the nearest
    existing parent (no folder is created before the end) and is renamed to ``path`` in one
    step. An existing ``path`` (a folder the caller agreed to replace): the temporary
    folder is ``path/.partial-<pid>``; at the end ``path/<last>`` is removed first, then
    each entry of the new folder replaces the entry of that name (a folder whole), ``last``
    moved in last, and the names in ``owned`` that the new folder lacks (the writer's own
    outputs of an earlier run) are removed; other entries of ``path`` are kept.
    """
    path = Path(os.path.abspath(path))
    existing = path.is_dir()
    if existing:
        tmp = path / f".partial-{os.getpid()}"
    else:
        base = path.parent
        while not base.exists():
            base = base.parent
        tmp = base / f".{path.name}.tmp-{os.getpid()}"
    if tmp.exists():                     # left by a killed run of the same pid
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if not existing:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp, path)
            return
        (path / last).unlink(missing_ok=True)   # no longer finished until the end
        names = sorted(e.name for e in tmp.iterdir())
        for name in [n for n in names if n != last] + [n for n in names if n == last]:
            _replace_entry(tmp / name, path / name)
        for name in set(owned) - set(names):
            _remove_entry(path / name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _remove_entry(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def _replace_entry(src: Path, dst: Path) -> None:
    """``src`` renamed onto ``dst`` (a file atomically; a folder after removing the old)."""
    if src.is_dir() or dst.is_dir():
        _remove_entry(dst)
    os.replace(src, dst)


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
