"""Preflight and resume: every read-only check of the output directory before a study
writes, the resume rules, and the first writes that reset or keep the training state.

A study's files live in :class:`ptycho.artifacts.StudyLayout`; its training state in
``.work/<model_id>/checkpoints/last.ckpt`` (written after every epoch) until
``metrics.json`` (written last) marks the study finished. The rules:

- a finished study is replaced only with ``--overwrite``;
- an interrupted one continues only with ``--resume`` (or is discarded with ``--overwrite``);
- ``--resume`` refuses changed settings except :data:`ptycho.config.study_config.RESUME_MAY_CHANGE`
  (a changed learning rate, say, would be silently replaced by the optimizer state stored
  in the checkpoint), and a checkpoint that does not load weights only
  (:mod:`ptycho_torch.model.checkpoint`) unless ``--trust-checkpoint``.

Every rank of a distributed launch runs the same read-only checks (so a refusal stops
all of them alike); only rank 0 writes (:func:`is_launch_rank_zero`).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from ptycho.artifacts import StudyLayout, write_json_atomic
from ptycho.config.cli import flag
from ptycho.config.study_config import RESUME_MAY_CHANGE, StudyConfig
from ptycho.config.validation import StudyError
from ptycho_torch.model.checkpoint import UntrustedCheckpointError, load_checkpoint

log = logging.getLogger(__name__)
_RANK_VARS = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK")


def is_launch_rank_zero() -> bool:
    """False in the extra processes of a distributed launch (Lightning's DDP launcher,
    torchrun, SLURM and MPI set these variables); only rank 0 writes into the output
    directory."""
    for var in _RANK_VARS:
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) != 0:
            return False
    return True


def read_checkpoint_epoch(path, *, trust: bool = False) -> int:
    """The epoch index stored in a Lightning checkpoint (0-based: the last finished epoch),
    read weights only (``trust``: see :func:`ptycho_torch.model.checkpoint.load_checkpoint`).

    Raises ValueError (one line) when the file is missing, truncated or not a checkpoint;
    :class:`~ptycho_torch.model.checkpoint.UntrustedCheckpointError` when it holds other Python
    objects and ``trust`` is false.
    """
    path = Path(path)
    try:
        ckpt = load_checkpoint(path, trust=trust, flag="--resume")
        return int(ckpt["epoch"])
    except UntrustedCheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure means "not resumable"
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        raise ValueError(f"checkpoint '{path}' is unreadable ({reason}) "
                         "(expected a complete Lightning checkpoint)") from None


def last_checkpoint_in(work_dir: Path) -> Path:
    """The checkpoint a training in ``work_dir`` writes after every epoch (and resumes from)."""
    return Path(work_dir) / "checkpoints" / "last.ckpt"


def last_checkpoint(layout: StudyLayout) -> Path:
    return last_checkpoint_in(layout.work_dir)


def check_dir_target(name: str, path: Path) -> None:
    """``path`` must be a directory or creatable as one (its nearest existing parent a
    writable directory). Writes nothing."""
    if path.exists() and not path.is_dir():
        raise StudyError(f"{name}={str(path)!r} is a file (allowed: a directory path) "
                         f"[flag {flag(name)}]")
    parent = path.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise StudyError(f"{name}={str(path)!r} lies under {str(parent)!r}, which is a file "
                         f"(allowed: a directory path) [flag {flag(name)}]")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StudyError(f"{name}={str(path)!r} is not writable ({str(parent)!r}) "
                         f"(allowed: a writable directory) [flag {flag(name)}]")


def check_resume(cfg: StudyConfig, layout: StudyLayout) -> None:
    """Refuse --resume from an unreadable or untrusted checkpoint or with changed training
    settings."""
    try:
        read_checkpoint_epoch(last_checkpoint(layout), trust=cfg.run.trust_checkpoint)
    except UntrustedCheckpointError as err:
        raise StudyError(f"cannot resume: {err}") from None
    except ValueError as err:
        raise StudyError(f"cannot resume: {err}; drop --resume and pass --overwrite to start "
                         "over") from None
    saved_path = layout.work_dir / "study_config.json"
    try:
        saved = StudyConfig.from_dict(json.loads(saved_path.read_text())["study"]).flat()
    except (OSError, ValueError, KeyError, TypeError):
        return  # nothing to compare with; Lightning checks the weights' shapes
    now = cfg.flat()
    changed = [k for k in now if k not in RESUME_MAY_CHANGE and saved.get(k) != now[k]]
    if changed:
        k = changed[0]
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise StudyError(f"cannot resume: {k}={now[k]!r} but the interrupted run used "
                         f"{k}={saved[k]!r}{more} (allowed: the interrupted run's value; or drop "
                         f"--resume and pass --overwrite to start over) [flag {flag(k)}]")


def prepare_output(cfg: StudyConfig, model_id: str | None = None) -> StudyLayout:
    """Check the output directory and the resume state. Writes nothing."""
    out = Path(cfg.run.output_dir)
    check_dir_target("output_dir", out)
    if cfg.run.cache_dir:
        check_dir_target("cache_dir", Path(cfg.run.cache_dir))
    model_id = model_id or cfg.model_id
    layout = StudyLayout(out, model_id)
    if layout.is_finished() and not cfg.run.overwrite:
        raise StudyError(f"output_dir={str(out)!r} already holds a finished study of "
                         f"{model_id} ({layout.metrics_path}); pass --overwrite to replace it "
                         "or choose another --output-dir")
    last = last_checkpoint(layout)
    if last.exists() and not cfg.run.resume and not cfg.run.overwrite:
        try:
            where = (f"checkpoint after epoch "
                     f"{read_checkpoint_epoch(last, trust=cfg.run.trust_checkpoint) + 1}: {last}")
        except UntrustedCheckpointError:
            where = f"checkpoint {last}, which holds Python objects beyond weights"
        except ValueError:
            where = f"unreadable checkpoint {last}"
        raise StudyError(f"output_dir={str(out)!r} holds an interrupted run of {model_id} "
                         f"({where}); pass --resume to continue it or --overwrite to start over")
    if cfg.run.resume and last.exists():
        check_resume(cfg, layout)
    return layout


def start_work(cfg: StudyConfig, layout: StudyLayout) -> None:
    """First writes into output_dir (rank 0 only): reset or keep the training state."""
    if cfg.run.overwrite and layout.is_finished():
        layout.metrics_path.unlink()  # the old study no longer counts as finished
    keep = cfg.run.resume and last_checkpoint(layout).exists()
    if not keep:
        if cfg.run.resume:
            log.info("--resume: no checkpoint under %s; starting from scratch", layout.work_dir)
        if layout.work_dir.exists():
            shutil.rmtree(layout.work_dir)  # a stale run without a checkpoint, or --overwrite
        for old in (layout.visuals_dir / "snapshots").glob(f"{layout.model_id}_epoch*.png"):
            old.unlink()
    else:  # a checkpoint write cut short by a kill leaves its temporary file behind
        for stale in (layout.work_dir / "checkpoints").glob(".*.tmp-*"):
            stale.unlink()
    layout.work_dir.mkdir(parents=True, exist_ok=True)
    saved = layout.work_dir / "study_config.json"
    if not keep or not saved.exists():
        write_json_atomic(saved, {"study": cfg.to_dict()})
