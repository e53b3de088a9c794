#!/usr/bin/env python
"""Position correction on a scan with known truth (ptycho_torch.studies.position_correction).

    python scripts/studies/make_example_scan.py --from data/run1084_recon3_postPC.npz \\
        --positions nominal --layouts dataset --output-dir outputs/run1084_nominal
    python scripts/studies/position_correction.py outputs/run1084_nominal/dataset.npz \\
        --output outputs/run1084_nominal/position_correction.json
"""
from __future__ import annotations

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from ptycho_torch.studies.commands import position_correction_main as main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
