"""The training scan's gridsize-2 groups drawn with ``k_nearest`` / ``groups_per_position``
(the scored test scan keeps one group per position), read from a raw scan file."""
import numpy as np
import pytest

from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import StudyError
from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import simulate_spiral_scan
from ptycho.formats import read_scan
from ptycho.formats.readers import read_dataset
from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz
from ptycho.geometry.grouping import group_neighbours
from ptycho.probes import two_mode_probe
from ptycho.inputs import load_study_data

N, NPOS = 16, 30


@pytest.fixture(scope="module")
def scan_file(tmp_path_factory):
    obj = make_object(64, 30, np.random.default_rng(0))
    scan = simulate_spiral_scan(obj, N, NPOS, step_px=3.0, jitter_px=0.5,
                                probe_modes=two_mode_probe(N), nphotons=1e4, seed=1)
    return write_ptychopinn_npz(tmp_path_factory.mktemp("groups") / "scan.npz", scan)


def test_the_training_scan_is_drawn_and_the_test_scan_is_not(scan_file):
    cfg = StudyConfig().replace(train_npz=str(scan_file), N=N, fno_modes=8, gridsize=2,
                                k_nearest=6, groups_per_position=7)
    train, test, _ = load_study_data(cfg)
    assert train.diffraction.shape == (7 * NPOS, 4, N, N)
    assert test.diffraction.shape == (NPOS, 4, N, N)
    one = read_scan(scan_file).to_dataset(gridsize=1)
    centres = one.centres[:, 0].astype(np.float64)
    np.testing.assert_array_equal(train.pattern_ids(), group_neighbours(
        centres, 2, k_nearest=6, groups_per_position=7))
    np.testing.assert_array_equal(test.pattern_ids(), group_neighbours(centres, 2))
    # each group's patterns and offsets are those of its members
    np.testing.assert_array_equal(train.diffraction, one.diffraction[train.pattern_ids(), 0])
    np.testing.assert_allclose(train.centres.reshape(-1, 4, 2), centres[train.pattern_ids()],
                               atol=1e-4)


def test_a_project_npz_keeps_its_groups(tiny_paths_g2):
    path = tiny_paths_g2.train
    with pytest.raises(ValueError) as exc:
        read_dataset(path, gridsize=2, groups_per_position=7)
    assert str(exc.value) == (f"dataset '{path}': groups_per_position=7 needs a raw scan file "
                              "(this project's NPZ holds the groups made when it was written; "
                              "allowed here: k_nearest=0, groups_per_position=1)")
    cfg = StudyConfig().replace(train_npz=str(path), N=32, gridsize=2, k_nearest=6)
    with pytest.raises(StudyError, match=r"k_nearest=6 needs a raw scan file .* \[flag --train-npz\]$"):
        load_study_data(cfg)
