#!/usr/bin/env python
"""Reference levels: what simple objects score on a study's test region.

    python scripts/studies/reference_levels.py outputs/quality_gate/recons/pinn_hybrid/recon.npz \
        --test-npz outputs/quality_gate/datasets/<hash>/test.npz

Prints the reconstructions' metrics next to a flat object, the true amplitude with zero
phase and the ground truth blurred by 1, 2 and 4 px; with --test-npz also the training
loss of the true object and of its amplitude with zero phase. The work
is done by ``ptycho_torch.studies.reference_levels``; see docs/guide/studies.md. Bad input: one line on
stderr, exit code 2.
"""
from __future__ import annotations

import sys

import _repo_path  # noqa: F401  (the repository root on sys.path)
from ptycho_torch.studies.commands import reference_levels_main as main

if __name__ == "__main__":
    sys.exit(main())
