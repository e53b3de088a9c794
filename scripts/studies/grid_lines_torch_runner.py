#!/usr/bin/env python
"""Grid-lines ptychography study, end to end, in PyTorch (entry point ``ptycho-study``).

    python scripts/studies/grid_lines_torch_runner.py --fno-width 64
    python scripts/studies/grid_lines_torch_runner.py --preset quick
    python scripts/studies/grid_lines_torch_runner.py --config outputs/x/runs/pinn_hybrid/config.json

Simulates (or reads) the scan, builds the generator named by ``--architecture`` from the
config hyperparameters, trains it unsupervised through the differentiable far-field model
with Lightning, predicts the scored scan in batches with ``forward_predict``, stitches it,
scores it (against the ground truth when there is one; the data residual always) and
writes JSON, NPZ and PNG artifacts under ``--output-dir``. The work is done by
``ptycho_torch.study.run_study``; every flag is a field of ``ptycho.config.StudyConfig``.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:  # running from a clone without installing
    sys.path.insert(0, str(_REPO))

from ptycho.config.cli import config_from_argv, flag_hint  # noqa: E402
from ptycho.config.config import StudyConfig, from_preset  # noqa: E402,F401 - re-exported
from ptycho.config.validation import StudyError  # noqa: E402,F401 - re-exported
from ptycho.study_metrics import metrics_table  # noqa: E402
from ptycho_torch.inference import run_torch_inference  # noqa: E402,F401 - re-exported

#: The study config (the name the seed's users import).
TorchRunnerConfig = StudyConfig


def run_grid_lines_torch(cfg: StudyConfig) -> dict:
    """Run one study; returns the metrics.json content (``{}`` on extra DDP ranks)."""
    from ptycho_torch.study import run_study
    result = run_study(cfg)
    return result.metrics.to_json() if result is not None else {}


def configure_logging() -> None:
    """INFO messages of this project on stderr, one line each; Lightning keeps its own."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("ptycho", "ptycho_torch"):
        lg = logging.getLogger(name)
        if not lg.handlers:
            lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False


def refuse(err: BaseException) -> int:
    print(f"error: {flag_hint(err)}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    """CLI entry point. Exit codes: 0 done; 2 refused input (one ``error:`` line on
    stderr, nothing written); 130 interrupted (resume with --resume)."""
    configure_logging()
    try:
        cfg = config_from_argv(argv)
    except ValueError as err:  # ConfigError and StudyError are ValueErrors
        return refuse(err)
    try:
        metrics = run_grid_lines_torch(cfg)
    except StudyError as err:
        return refuse(err)
    except KeyboardInterrupt:
        print("error: interrupted; resume with --resume", file=sys.stderr)
        return 130
    if metrics:
        from ptycho.study_metrics import StudyMetrics
        print(metrics_table([StudyMetrics.from_json(metrics)]))
        print(f"stop: {metrics['stop_reason']} after {metrics['epochs_completed']} epoch(s), "
              f"{metrics['steps_completed']} step(s); artifacts: "
              f"{Path(cfg.run.output_dir).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
