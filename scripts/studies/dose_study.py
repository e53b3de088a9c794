#!/usr/bin/env python
"""Dose study: networks against Pty-chi over photons per pattern.

    python scripts/studies/dose_study.py --preset quick --nphotons-list 1e2,1e3,1e4,1e5,1e9 \
        --architectures hybrid,fno --iterative lsqml,epie --iterative-epochs 100

For each dose the grid-lines dataset is simulated with the same objects, scan and seeds (only
the Poisson noise changes); every architecture is trained (Poisson loss below 1e6 photons,
MAE at and above, unless --loss is given) and the same test scan is reconstructed with
Pty-chi, at the fixed epochs and at the epoch chosen by a held-out data residual. Every
(method, dose) cell has its own folder ``<output-dir>/dose_<value>/``; running the same
command again reuses the finished cells. Writes dose_study.md / .json / .png and
dose_grid.png. The work is done by ``ptycho_torch.studies.dose`` (entry point
``ptycho-dose-study``); see docs/guide/studies.md. Bad input: one line on stderr, exit code 2.
"""
from __future__ import annotations

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:  # running from a clone without installing
    sys.path.insert(0, str(_REPO))

from ptycho_torch.studies.commands import dose_main as main  # noqa: E402
from ptycho_torch.studies.options.dose import build_parser, config_from_argv  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
