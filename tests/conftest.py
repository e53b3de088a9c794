"""Shared test setup: make scripts/studies importable, keep torch single-threaded.

One thread, in this process and (through OMP_NUM_THREADS) in every study or benchmark the
tests start as a subprocess: on a shared 2-core machine several OpenMP threads per process
spin against each other and make tiny models tens of times slower, and one thread keeps
CPU results bit-identical between the CLI and in-process runs.
"""
import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from ptycho.datagen.from_file import ScanTruth, dataset_arrays
from ptycho.formats.cxi import write_cxi
from ptycho.formats.ptychodus import write_ptychodus
from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz
from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import simulate_spiral_scan
from ptycho.probes import two_mode_probe
from ptycho.io import save_dataset

REPO = Path(__file__).resolve().parents[1]
for sub in ("scripts/studies", "scripts/benchmarks"):
    p = str(REPO / sub)
    if p not in sys.path:
        sys.path.insert(0, p)
os.environ.setdefault("OMP_NUM_THREADS", "1")
# the torch tests' tiny datasets and stand-ins, for every folder under tests/
pytest_plugins = ["torch_fixtures"]


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
        pytest.fail(f"tests marked 'iterative' need Pty-chi (install route: docs/guide/quickstart.md): {err}")


def _write_layouts(scan, d: Path) -> dict:
    """The scan as this project's NPZ (amplitudes sqrt(counts) / s, probe / s), an
    upstream PtychoPINN NPZ, a CXI file and a Ptychodus pair (counts, probe in photons)."""
    s = scan.photon_scale
    truth = ScanTruth(scan.object, scan.positions_px, scan.probe / s, s)
    return {"dataset": save_dataset(d / "dataset.npz", *dataset_arrays(scan, truth)),
            "npz": write_ptychopinn_npz(d / "scan.npz", scan),
            "cxi": write_cxi(d / "scan.cxi", scan),
            "ptychodus": write_ptychodus(d / "ptychodus", scan)[0]}


@pytest.fixture(scope="session")
def write_layouts():
    """``write_layouts(scan, folder) -> {layout: path}``: one simulated scan in every layout."""
    return _write_layouts


def _tree_state(path: Path):
    """None if ``path`` does not exist, else {relative path: sha256} of every file."""
    if not path.exists():
        return None
    return {str(p.relative_to(path)): (hashlib.sha256(p.read_bytes()).hexdigest()
                                       if p.is_file() else "dir")
            for p in sorted(path.rglob("*"))}


@pytest.fixture(scope="session")
def tree_state():
    """``tree_state(path)``: what a folder holds, to show a refusal changed nothing."""
    return _tree_state


@pytest.fixture(scope="session")
def spiral_npz(tmp_path_factory):
    """A 70-position Fermat-spiral scan of a 96 x 96 object at N = 32 (two probe modes, 1e5
    photons, 0.7 px jitter), written as this project's NPZ: the scan-region and
    position-correction tests read it."""
    obj = make_object(96, 40, np.random.default_rng(3))
    scan = simulate_spiral_scan(obj, 32, 70, step_px=4.0, jitter_px=0.7,
                                probe_modes=two_mode_probe(32), nphotons=1e5, seed=4)
    return write_ptychopinn_npz(tmp_path_factory.mktemp("spiral") / "scan.npz", scan)
