"""A study's separate --test-npz is read in the training scan's units: the same scan in any
layout (this project's amplitudes, or counts in an upstream NPZ, CXI or Ptychodus pair)
gives the network the same amplitudes as the training file itself."""
from __future__ import annotations

import numpy as np
import pytest

from ptycho.config.study_config import StudyConfig
from ptycho.datagen.from_file import ScanTruth, dataset_arrays
from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import simulate_spiral_scan
from ptycho.formats.cxi import write_cxi
from ptycho.formats.ptychodus import write_ptychodus
from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz
from ptycho.io import save_dataset
from ptycho.probes import make_probe
from ptycho_torch.study_inputs import load_study_data, load_test_data


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("test_scan_units")
    obj = make_object(96, 40, np.random.default_rng(5))
    scan = simulate_spiral_scan(obj, 32, 25, step_px=4.0, jitter_px=0.5,
                                probe_modes=make_probe(32)[None], nphotons=1e5, seed=6)
    s = scan.photon_scale
    truth = ScanTruth(scan.object, scan.positions_px, scan.probe / s, s)
    return {"dataset": save_dataset(d / "dataset.npz", *dataset_arrays(scan, truth)),
            "npz": write_ptychopinn_npz(d / "scan.npz", scan),
            "cxi": write_cxi(d / "scan.cxi", scan),
            "ptychodus": write_ptychodus(d / "ptychodus", scan)[0]}


def _cfg(train, test):
    return StudyConfig.from_flat({"train_npz": str(train), "test_npz": str(test), "N": 32})


@pytest.mark.parametrize("layout", ["npz", "cxi", "ptychodus"])
def test_a_test_scan_in_counts_reaches_the_network_in_the_training_units(files, layout):
    train, test, info = load_study_data(_cfg(files["dataset"], files[layout]))
    scale = float(np.sqrt(np.mean(train.diffraction.astype(np.float64) ** 2)))
    np.testing.assert_allclose(test.diffraction, train.diffraction, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(test.probe_modes, train.probe_modes, rtol=0,
                               atol=1e-5 * np.abs(train.probe).max())
    assert info["test_scan_scale"]["value"] == pytest.approx(train.metadata["scale"], rel=1e-6)
    alone, _ = load_test_data(_cfg(files["dataset"], files[layout]))
    np.testing.assert_array_equal(alone.diffraction, test.diffraction)
