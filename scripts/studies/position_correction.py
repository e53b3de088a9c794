#!/usr/bin/env python
"""Position correction on a scan with known truth (ptycho_torch.studies.position_correction).

    python scripts/studies/make_example_scan.py --from data/run1084_recon3_postPC.npz \\
        --positions nominal --layouts dataset --output-dir outputs/run1084_nominal
    python scripts/studies/position_correction.py outputs/run1084_nominal/dataset.npz \\
        --output outputs/run1084_nominal/position_correction.json
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from ptycho.artifacts import write_json_atomic  # noqa: E402
from ptycho.config.cli import add_options  # noqa: E402
from ptycho_torch.engine.threads import apply_num_threads, threads_line  # noqa: E402
from ptycho_torch.studies.position_correction import PositionOptions, run_position_study  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    add_options(p, PositionOptions)
    values = vars(p.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        a = PositionOptions.from_values(values)
        print(threads_line(*apply_num_threads(a.num_threads)), flush=True)
        result = run_position_study(a.dataset, epochs=a.epochs, seed=a.seed)
    except (OSError, ValueError) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    print(write_json_atomic(Path(a.output), result))
    return 0

if __name__ == "__main__":
    sys.exit(main())
