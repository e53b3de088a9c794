"""Shared test setup: make scripts/studies importable, keep torch single-threaded.

One thread, in this process and (through OMP_NUM_THREADS) in every study or benchmark the
tests start as a subprocess: on a shared 2-core machine several OpenMP threads per process
spin against each other and make tiny models tens of times slower, and one thread keeps
CPU results bit-identical between the CLI and in-process runs.
"""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
for sub in ("scripts/studies", "scripts/benchmarks"):
    p = str(REPO / sub)
    if p not in sys.path:
        sys.path.insert(0, p)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    try:
        import torch
    except ImportError:  # numpy-only tests
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def require_ptychi():
    """For tests marked ``iterative``: fail (never skip) when Pty-chi does not import, naming
    the install route."""
    from ptycho_torch import ptychi
    try:
        ptychi.import_ptychi()
    except ptychi.IterativeUnavailableError as err:
        pytest.fail(f"tests marked 'iterative' need Pty-chi (install route: docs/studies.md): {err}")
