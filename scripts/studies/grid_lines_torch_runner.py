#!/usr/bin/env python
"""Grid-lines ptychography study, end to end, in PyTorch (entry point ``ptycho-study``).

    python scripts/studies/grid_lines_torch_runner.py --fno-width 64
    python scripts/studies/grid_lines_torch_runner.py --preset quick
    python scripts/studies/grid_lines_torch_runner.py --config outputs/x/runs/pinn_hybrid/config.json
    python scripts/studies/grid_lines_torch_runner.py --train-npz my_scan.cxi   # a real scan

Simulates (or reads) the scan, builds the generator named by ``--architecture`` from the
config hyperparameters, trains it unsupervised through the differentiable far-field model
with Lightning, predicts the scored scan in batches with ``forward_predict``, stitches it,
scores it (against the ground truth when there is one; the data residual always) and
writes JSON, NPZ and PNG artifacts under ``--output-dir``. The work is done by
``ptycho_torch.pipeline.study.run_study``; every flag is a field of ``ptycho.config.StudyConfig``.

For code: ``TorchRunnerConfig`` (the flat study config, ``TorchRunnerConfig(fno_width=64,
infer_batch_size=64)``), ``run_grid_lines_torch(cfg)`` (one study from a TorchRunnerConfig
or a StudyConfig; returns the metrics.json content) and ``run_torch_inference(model,
test_data, cfg)`` (batched ``forward_predict``).
"""
from __future__ import annotations

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:  # running from a clone without installing
    sys.path.insert(0, str(_REPO))

from ptycho.config.presets import from_preset  # noqa: E402,F401 - re-exported
from ptycho.config.study_config import StudyConfig  # noqa: E402,F401 - re-exported
from ptycho.config.runner_config import TorchRunnerConfig  # noqa: E402,F401 - re-exported
from ptycho.config.validation import StudyError  # noqa: E402,F401 - re-exported
from ptycho_torch.cli import run_study_cli as run_grid_lines_torch  # noqa: E402,F401
from ptycho_torch.cli import study_main  # noqa: E402


def __getattr__(name: str):
    """``run_torch_inference`` (re-exported from ``ptycho_torch.engine.inference``), imported
    on first use, so that running this script parses and checks its flags before torch
    loads."""
    if name == "run_torch_inference":
        from ptycho_torch.engine.inference import run_torch_inference
        return run_torch_inference
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv=None) -> int:
    return study_main(argv, prog="grid_lines_torch_runner.py")


if __name__ == "__main__":
    sys.exit(main())
