#!/usr/bin/env python
"""Reconstruct any supported scan with a trained model (entry point ``ptycho-reconstruct``).

    python scripts/studies/reconstruct.py --checkpoint RUN/model.ckpt --data FILE --output-dir DIR

The work is done by ``ptycho_torch.pipeline.reconstruct.run_reconstruction``; see that module for
what is written.
"""
from __future__ import annotations

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:  # running from a clone without installing
    sys.path.insert(0, str(_REPO))

from ptycho_torch.cli import reconstruct_main  # noqa: E402


def main(argv=None) -> int:
    return reconstruct_main(argv, prog="reconstruct.py")


if __name__ == "__main__":
    sys.exit(main())
