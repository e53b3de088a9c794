"""The experiment logger of a training run: Lightning's own, chosen by ``--logger``.

``csv`` (the default; no extra package) writes ``.work/<model_id>/logs/metrics.csv``;
``tensorboard`` writes event files under ``.work/<model_id>/logs`` (``tensorboard --logdir``
there), with the ``tensorboard`` or ``tensorboardX`` package; ``mlflow`` a file store
``.work/<model_id>/mlruns`` (``mlflow ui --backend-store-uri`` there), with ``mlflow``. The
study's own record (``history.json``, ``metrics.json``) does not depend on the choice.
A resumed run's CSV log goes to ``logs/resumed_after_epoch_<k>/metrics.csv``, beside the
first run's: Lightning's CSV logger deletes a ``metrics.csv`` it finds in its own folder (a
second resume after the same epoch writes ``resumed_after_epoch_<k>_2``, and so on).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger

NEEDS = {"csv": (), "tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",)}


def check_logger(kind: str) -> None:
    """Refuse, in one line naming the flag, a logger whose package is not installed."""
    needs = NEEDS[kind]
    if needs and not any(importlib.util.find_spec(m) is not None for m in needs):
        raise ValueError(f"--logger {kind} needs the package {' or '.join(needs)}, which is "
                         f"not installed (pip install {needs[0]}; allowed without it: csv) "
                         "[flag --logger]")


def make_logger(kind: str, work_dir: Path, resumed_from: int | None = None):
    """The Lightning logger of ``kind`` writing under ``work_dir`` (``resumed_from``: the
    checkpoint epoch a resumed run continues after, or None)."""
    check_logger(kind)
    work_dir = Path(work_dir)
    if kind == "tensorboard":
        return TensorBoardLogger(str(work_dir), name="logs", version="")
    if kind == "mlflow":
        return MLFlowLogger(experiment_name="ptychopinn", run_name=work_dir.name,
                            tracking_uri=(work_dir / "mlruns").resolve().as_uri())
    version = ("" if resumed_from is None
               else unused_version(work_dir / "logs", f"resumed_after_epoch_{resumed_from}"))
    return CSVLogger(str(work_dir), name="logs", version=version)


def unused_version(logs: Path, name: str) -> str:
    """``name``, else ``name_2``, ``name_3``, ...: the first folder under ``logs`` that holds
    nothing, so no earlier session's log is deleted (and Lightning has nothing to warn of)."""
    version, n = name, 1
    while (logs / version).is_dir() and any((logs / version).iterdir()):
        n += 1
        version = f"{name}_{n}"
    return version
