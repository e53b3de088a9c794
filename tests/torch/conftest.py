"""Tiny simulated grid-lines datasets shared by the torch tests (seconds to build)."""
import pytest

TINY = dict(object_size=64, N=32, n_lines=40, train_stride=4, test_stride=8,
            n_train_objects=1, n_test_objects=1)


@pytest.fixture(scope="session")
def tiny_paths(tmp_path_factory):
    from ptycho.datagen.grid_lines import GridLinesSpec, simulate_grid_lines
    return simulate_grid_lines(GridLinesSpec(**TINY), tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(scope="session")
def tiny_paths_g2(tmp_path_factory):
    from ptycho.datagen.grid_lines import GridLinesSpec, simulate_grid_lines
    return simulate_grid_lines(GridLinesSpec(**{**TINY, "gridsize": 2}),
                               tmp_path_factory.mktemp("tiny_data_g2"))


@pytest.fixture(scope="session")
def tiny_data(tiny_paths):
    from ptycho.io import load_dataset
    return load_dataset(tiny_paths.train), load_dataset(tiny_paths.test)


@pytest.fixture(scope="session")
def tiny_data_g2(tiny_paths_g2):
    from ptycho.io import load_dataset
    return load_dataset(tiny_paths_g2.train), load_dataset(tiny_paths_g2.test)
