#!/usr/bin/env python
"""Online adaptation of ptycho-live (--adapt) on a scan the model was not trained on: frozen
against adapted, over seeds (ptycho_torch.studies.live_adapt).

    python scripts/studies/live_adapt_study.py --seeds 1,7,42 --output-dir outputs/live_adapt
"""
from __future__ import annotations

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from ptycho_torch.studies.live_adapt import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
