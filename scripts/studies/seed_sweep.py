#!/usr/bin/env python
"""One study per seed and the mean / min / max of every metric over them.

    python scripts/studies/seed_sweep.py --seeds 1,7,42 --preset quick --output-dir outputs/seeds

See ``ptycho_torch/studies/seeds.py``; every study flag applies (``--seeds`` replaces
``--seed``).
"""
from __future__ import annotations

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from ptycho_torch.studies.commands import seeds_main as main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
