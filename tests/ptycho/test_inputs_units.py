"""A study's separate --test-npz is read in the training scan's units: the same scan in any
layout (this project's amplitudes, or counts in an upstream NPZ, CXI or Ptychodus pair)
gives the network the same amplitudes as the training file itself."""
from __future__ import annotations

import numpy as np
import pytest

from ptycho.config.study_config import StudyConfig
from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import simulate_spiral_scan
from ptycho.probes import make_probe
from ptycho.inputs import load_study_data, load_test_data


@pytest.fixture(scope="module")
def files(tmp_path_factory, write_layouts):
    d = tmp_path_factory.mktemp("test_scan_units")
    obj = make_object(96, 40, np.random.default_rng(5))
    scan = simulate_spiral_scan(obj, 32, 25, step_px=4.0, jitter_px=0.5,
                                probe_modes=make_probe(32)[None], nphotons=1e5, seed=6)
    return write_layouts(scan, d)


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
