"""What every study shares: the plan of a network study and its row, the data keys a row
depends on, the test data and the settings line; the methods options (torch-free, in
:mod:`ptycho_torch.studies.options.methods`) are re-exported here."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ptycho.artifacts import StudyLayout
from ptycho.config.config import SimulationConfig
from ptycho.config.record import field_names
from ptycho.config.study_config import NO_EFFECT_ON_RESULT, StudyConfig
from ptycho.study_metrics import StudyMetrics
from ptycho_torch.engine.device import check_device
from ptycho_torch.engine.outputs import prepare_output
from ptycho_torch.pipeline.study import run_study
from ptycho_torch.studies.options.methods import (  # noqa: F401  (re-exported: imported from here)
    Methods,
    architectures_option,
    default_output_dir,
    iterative_option,
    parse_architectures,
    parse_engines,
    split_list,
)
from ptycho_torch.studies.rows import Wanted, finished_row, reuse_or_compute

log = logging.getLogger(__name__)


def comparable(cfg: StudyConfig) -> dict:
    """The settings that change a study's numbers."""
    return {k: v for k, v in cfg.flat().items() if k not in NO_EFFECT_ON_RESULT}


def finished_config(layout: StudyLayout) -> StudyConfig | None:
    """The config a finished study ran with (its ``config.json``), or None."""
    try:
        return StudyConfig.from_dict(json.loads((layout.run_dir / "config.json").read_text())["study"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def study_row(cfg: StudyConfig) -> Wanted:
    """A network study's row: ``runs/<id>/metrics.json``, keyed by the settings that change
    its numbers (:func:`comparable` of the ``config.json`` it ran with)."""
    layout = StudyLayout(Path(cfg.run.output_dir), cfg.model_id)
    now = comparable(cfg)

    def read(path: Path):
        done = finished_config(layout)
        return (StudyMetrics.from_json(json.loads(path.read_text())),
                None if done is None else comparable(done))

    def refusal(old: dict | None) -> str:
        diff = [k for k in now if (old or {}).get(k) != now[k]]
        what = (f" ({diff[0]}={now[diff[0]]!r}, the finished study used {old.get(diff[0])!r})"
                if diff and old is not None else "")
        return (f"output_dir={str(cfg.run.output_dir)!r} already holds a finished study of "
                f"{cfg.model_id} with other settings{what}; pass --overwrite to replace it or "
                "choose another --output-dir")
    return Wanted(cfg.model_id, layout.metrics_path, now, read, refusal)


def plan_study(cfg: StudyConfig) -> str:
    """``'reuse'`` a finished study with the same settings, else ``'run'`` after the
    runner's read-only checks (output directory, interrupted run, --resume state).
    A finished study with other settings is refused unless --overwrite; so is a device or
    precision this machine lacks. Writes nothing."""
    check_device(cfg)
    if finished_row(study_row(cfg), cfg.run.overwrite) is not None:
        return "reuse"
    prepare_output(cfg)
    return "run"


def run_or_reuse(cfg: StudyConfig) -> StudyMetrics | None:
    """The study's metrics record: the finished one (:func:`plan_study` checked it) or
    trained now (None on extra DDP ranks)."""
    def train():
        log.info("%s: training (%s)", cfg.model_id, cfg.run.output_dir)
        result = run_study(cfg)
        return None if result is None else result.metrics
    return reuse_or_compute(study_row(cfg), train, overwrite=cfg.run.overwrite, refuse=False,
                            what="study")


_DATA_FIELDS = field_names(SimulationConfig) + ("N", "gridsize", "train_npz", "test_npz",
                                                 "probe_npz", "data_unit")


def data_key(cfg: StudyConfig) -> dict:
    """Every setting that determines the scored test scan."""
    flat = cfg.flat()
    return {k: flat[k] for k in _DATA_FIELDS}


def iterative_key(cfg: StudyConfig, engine: str, epochs: int, batch_size: int, **extra) -> dict:
    """What an iterative row's numbers depend on (its ``compare_key``)."""
    return {"engine": engine, "epochs": int(epochs), "batch_size": int(batch_size),
            "seed": cfg.training.seed, "data": data_key(cfg), **extra}


def row_stamp(layout: StudyLayout) -> int:
    """When a finished row's metrics.json was written: rows derived from it (refined,
    best-validation, transfer) are recomputed when it changes."""
    return layout.metrics_path.stat().st_mtime_ns


def refined_key(cfg: StudyConfig, engine: str, epochs: int, batch_size: int,
                source: StudyLayout, **extra) -> dict:
    """A refined row's ``compare_key``: the engine's settings and the network row it starts
    from (its id and :func:`row_stamp`: a retrained network is new)."""
    return iterative_key(cfg, engine, epochs, batch_size, init=source.model_id,
                         init_stamp=row_stamp(source), **extra)


def settings_line(cfg: StudyConfig, skip: tuple = ()) -> str:
    """The settings a reader of a table needs, ``name=value`` (minus ``skip``)."""
    m, t, s = cfg.model, cfg.training, cfg.simulation
    # a file scan's dose is the file's: the simulation's nphotons does not apply to it
    dose = f"{s.nphotons:g}" if cfg.simulated else "the file's"
    items = {"N": m.N, "gridsize": m.gridsize, "nphotons": dose,
             "preset": cfg.run.preset, "epochs<": t.epochs,
             "max_train_minutes": f"{t.max_train_minutes:g}", "batch_size": t.batch_size,
             "learning_rate": f"{t.learning_rate:g}", "loss": t.loss, "fno_width": m.fno_width,
             "fno_modes": m.fno_modes, "device": t.device, "min_steps": t.min_steps,
             "probe_update": cfg.probe.probe_update}
    return ", ".join(f"{k}={v}" for k, v in items.items() if k not in skip)
