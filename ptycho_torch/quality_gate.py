"""``python -m ptycho_torch.quality_gate``: the reference's quality gate (the code lives in
:mod:`ptycho_torch.studies.quality_gate`)."""
import sys

from ptycho_torch.studies.quality_gate import main

if __name__ == "__main__":
    sys.exit(main())
