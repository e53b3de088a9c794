"""Preflight units (ptycho_torch.engine.outputs): every refusal of prepare_output / check_resume
happens before anything is written, names the setting and says what to do; start_work
saves the study config the resume check compares against."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ptycho.artifacts import StudyLayout
from ptycho.config.study_config import RESUME_MAY_CHANGE, StudyConfig
from ptycho.config.validation import StudyError
from ptycho_torch.engine.outputs import (
    check_dir_target, check_resume, is_launch_rank_zero, last_checkpoint, prepare_output,
    read_checkpoint_epoch, start_work,
)

TINY = dict(N=32, object_size=64, fno_modes=4, test_stride=8, architecture="fno")


def _cfg(out: Path, **values) -> StudyConfig:
    return StudyConfig().replace(**{**TINY, "output_dir": str(out), **values})


def _tree(path: Path):
    return None if not path.exists() else sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def _checkpoint(path: Path, epoch: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": epoch, "state_dict": {}}, path)
    return path


def test_a_fresh_directory_passes_and_nothing_is_written(tmp_path):
    out = tmp_path / "new" / "study"
    layout = prepare_output(_cfg(out))
    assert layout == StudyLayout(out, "pinn_fno") and not out.exists()
    assert layout.work_dir == out / ".work" / "pinn_fno"
    assert last_checkpoint(layout) == out / ".work/pinn_fno/checkpoints/last.ckpt"
    assert is_launch_rank_zero()


@pytest.mark.parametrize("where", ["output_dir", "cache_dir"])
def test_a_file_where_a_directory_belongs_is_refused(tmp_path, where):
    f = tmp_path / "file"
    f.write_text("x")
    values = {"output_dir": str(f)} if where == "output_dir" else {
        "output_dir": str(tmp_path / "out"), "cache_dir": str(f)}
    cfg = StudyConfig().replace(**TINY, **values)
    with pytest.raises(StudyError) as exc:
        prepare_output(cfg)
    assert str(exc.value) == (f"{where}={str(f)!r} is a file (allowed: a directory path) "
                              f"[flag --{where.replace('_', '-')}]")
    with pytest.raises(StudyError, match=r"lies under .*, which is a file"):
        check_dir_target("output_dir", f / "below")
    assert f.read_text() == "x" and not (tmp_path / "out").exists()


def test_a_finished_study_is_replaced_only_with_overwrite(tmp_path):
    out = tmp_path / "s"
    layout = StudyLayout(out, "pinn_fno")
    layout.run_dir.mkdir(parents=True)
    layout.metrics_path.write_text("{}")
    before = _tree(out)
    with pytest.raises(StudyError) as exc:
        prepare_output(_cfg(out))
    assert str(exc.value).startswith(f"output_dir={str(out)!r} already holds a finished study "
                                     f"of pinn_fno ({layout.metrics_path}); pass --overwrite")
    assert prepare_output(_cfg(out, overwrite=True)) == layout
    # another model in the same directory is not affected
    assert prepare_output(_cfg(out, architecture="cnn")).model_id == "pinn_cnn"
    assert _tree(out) == before
    start_work(_cfg(out, overwrite=True), layout)  # the first write un-finishes the old study
    assert not layout.is_finished()
    assert json.loads((layout.work_dir / "study_config.json").read_text())["study"] == \
        _cfg(out, overwrite=True).to_dict()


def test_an_interrupted_run_needs_resume_or_overwrite(tmp_path):
    out = tmp_path / "s"
    layout = StudyLayout(out, "pinn_fno")
    _checkpoint(last_checkpoint(layout), epoch=2)
    before = _tree(out)
    with pytest.raises(StudyError) as exc:
        prepare_output(_cfg(out))
    assert str(exc.value) == (f"output_dir={str(out)!r} holds an interrupted run of pinn_fno "
                              f"(checkpoint after epoch 3: {last_checkpoint(layout)}); pass "
                              "--resume to continue it or --overwrite to start over")
    assert prepare_output(_cfg(out, overwrite=True)) == layout
    assert prepare_output(_cfg(out, resume=True)) == layout  # no saved config to compare
    assert _tree(out) == before
    assert read_checkpoint_epoch(last_checkpoint(layout)) == 2


def test_resume_refuses_a_changed_setting_and_allows_the_budget(tmp_path):
    out = tmp_path / "s"
    layout = StudyLayout(out, "pinn_fno")
    first = _cfg(out, learning_rate=1e-3, epochs=4)
    start_work(first, layout)  # saves .work/pinn_fno/study_config.json
    _checkpoint(last_checkpoint(layout))
    changed = _cfg(out, learning_rate=2e-3, epochs=4, resume=True)
    with pytest.raises(StudyError) as exc:
        prepare_output(changed)
    assert str(exc.value) == ("cannot resume: learning_rate=0.002 but the interrupted run used "
                              "learning_rate=0.001 (allowed: the interrupted run's value; or "
                              "drop --resume and pass --overwrite to start over) "
                              "[flag --learning-rate]")
    with pytest.raises(StudyError, match=r"^cannot resume: fno_width=16 .* \(and 1 more\) "):
        check_resume(_cfg(out, fno_width=16, seed=9, epochs=4, resume=True), layout)
    # the budget and where it runs may change on resume
    assert {"epochs", "max_steps", "batch_size", "device"} <= RESUME_MAY_CHANGE
    same = _cfg(out, learning_rate=1e-3, epochs=8, max_steps=50, batch_size=4, resume=True)
    assert prepare_output(same) == layout
    # resuming keeps the saved config of the first session
    start_work(same, layout)
    saved = json.loads((layout.work_dir / "study_config.json").read_text())["study"]
    assert saved["training"]["epochs"] == 4 and last_checkpoint(layout).exists()


def test_resume_from_an_unreadable_checkpoint_is_refused(tmp_path):
    out = tmp_path / "s"
    layout = StudyLayout(out, "pinn_fno")
    last = last_checkpoint(layout)
    last.parent.mkdir(parents=True)
    last.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(StudyError) as exc:
        prepare_output(_cfg(out, resume=True))
    line = str(exc.value)
    assert line.startswith(f"cannot resume: checkpoint '{last}' is unreadable (")
    assert line.endswith("(expected a complete Lightning checkpoint); drop --resume and pass "
                         "--overwrite to start over")
    with pytest.raises(StudyError, match=r"\(unreadable checkpoint "):
        prepare_output(_cfg(out))


def test_extra_ranks_of_a_launch_are_not_rank_zero(monkeypatch):
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    assert is_launch_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not is_launch_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert is_launch_rank_zero()
