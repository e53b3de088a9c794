#!/usr/bin/env python
"""Learning curve: quality of ONE training run at increasing budgets.

    python scripts/studies/learning_curve.py --preset quick --budget-minutes 1,2,4,8,16,32,64
    python scripts/studies/learning_curve.py --preset paper --budget-epochs 1,2,4,8,16,32 \
        --reference-json outputs/grid_lines_compare_paper/runs/ptychi_lsqml/metrics.json

Every study flag applies; the budget (--budget-minutes, --budget-steps or --budget-epochs)
sets the training length. Writes learning_curve.json / .png under --output-dir. The work is
done by ``ptycho_torch.studies.learning_curve``; see docs/guide/studies.md. Bad input: one line on
stderr, exit code 2.
"""
from __future__ import annotations

import sys

import _repo_path  # noqa: F401  (the repository root on sys.path)
from ptycho_torch.studies.commands import learning_curve_main as main

if __name__ == "__main__":
    sys.exit(main())
