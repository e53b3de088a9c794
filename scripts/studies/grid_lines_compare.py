#!/usr/bin/env python
"""Compare generator architectures (and, optionally, Pty-chi) on one grid-lines dataset.

    python scripts/studies/grid_lines_compare.py --preset quick --architectures cnn,fno,hybrid
    python scripts/studies/grid_lines_compare.py --preset quick --iterative lsqml,epie

Every study flag applies to every architecture (the flags are generated from
``ptycho.config.StudyConfig``), plus ``--architectures``, ``--iterative``,
``--iterative-epochs`` and ``--iterative-batch-size``. Writes ``comparison.md`` / ``.json``
/ ``.png`` under ``--output-dir``; finished studies with the same settings are reused, so an
interrupted comparison continues when the same command is run again. The work is done by
``ptycho_torch.studies.comparison`` (entry point ``ptycho-compare``); see docs/guide/studies.md.
Bad input: one line on stderr, exit code 2, nothing written (a bad flag before torch loads).
"""
from __future__ import annotations

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:  # running from a clone without installing
    sys.path.insert(0, str(_REPO))

from ptycho_torch.studies.commands import compare_main as main  # noqa: E402
from ptycho_torch.studies.options.comparison import build_parser, config_from_argv  # noqa: E402, F401

if __name__ == "__main__":
    sys.exit(main())
