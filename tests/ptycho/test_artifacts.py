"""ptycho.artifacts.atomic_dir: an output folder is written whole or not at all."""
from __future__ import annotations

import os

import pytest

from ptycho.artifacts import atomic_dir


def _files(path):
    return {str(p.relative_to(path)): p.read_text() for p in sorted(path.rglob("*"))
            if p.is_file()}


def test_absent_target_appears_only_on_success(tmp_path):
    target = tmp_path / "a" / "b" / "out"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_dir(target) as tmp:
            (tmp / "recon.npz").write_text("half")
            raise RuntimeError("boom")
    assert not (tmp_path / "a").exists()            # not even its parents
    assert os.listdir(tmp_path) == []               # and no temporary folder left
    with atomic_dir(target) as tmp:
        assert tmp.parent == tmp_path and not target.exists()
        (tmp / "recon.npz").write_text("new")
        (tmp / "refined").mkdir()
        (tmp / "refined" / "metrics.json").write_text("r")
        (tmp / "metrics.json").write_text("m")
    assert _files(target) == {"recon.npz": "new", "refined/metrics.json": "r",
                              "metrics.json": "m"}
    assert os.listdir(tmp_path) == ["a"]


def test_existing_target_is_untouched_on_failure_and_merged_on_success(tmp_path):
    target = tmp_path / "out"
    (target / "refined").mkdir(parents=True)
    for name, text in {"recon.npz": "old", "metrics.json": "old m", "notes.txt": "mine",
                       "refined/metrics.json": "old r"}.items():
        (target / name).write_text(text)
    before = _files(target)
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(target, owned=("recon.npz", "metrics.json", "refined")) as tmp:
            (tmp / "recon.npz").write_text("half")
            raise KeyboardInterrupt
    assert _files(target) == before
    assert sorted(os.listdir(target)) == ["metrics.json", "notes.txt", "recon.npz", "refined"]
    with atomic_dir(target, owned=("recon.npz", "metrics.json", "refined")) as tmp:
        (tmp / "recon.npz").write_text("new")
        (tmp / "metrics.json").write_text("new m")
    # the writer's own entries are this run's (a stale refined/ is gone), others are kept
    assert _files(target) == {"recon.npz": "new", "metrics.json": "new m", "notes.txt": "mine"}
    assert sorted(os.listdir(target)) == ["metrics.json", "notes.txt", "recon.npz"]
