"""Tiny simulated grid-lines datasets and stand-ins shared by the torch tests (seconds to build);
a plugin of tests/conftest.py (``pytest_plugins``), so every test folder sees them."""
import pytest

TINY = dict(object_size=64, N=32, n_lines=40, train_stride=4, test_stride=8,
            n_train_objects=1, n_test_objects=1)


@pytest.fixture(scope="session")
def tiny_paths(tmp_path_factory):
    from ptycho.datagen.grid_lines import GridLinesSpec
    from ptycho.datagen.grid_lines_files import simulate_grid_lines
    return simulate_grid_lines(GridLinesSpec(**TINY), tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(scope="session")
def tiny_paths_g2(tmp_path_factory):
    from ptycho.datagen.grid_lines import GridLinesSpec
    from ptycho.datagen.grid_lines_files import simulate_grid_lines
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


def cut_true_patches(ground_truth, centres, N: int, shift=(0, 0)):
    """The object patches at the absolute patch ``centres`` (..., 2) = (x, y): a patch
    centred at c covers pixels c - N/2 .. c + N/2 - 1 (ptycho.dataset's convention).
    ``shift`` (dx, dy) moves every cut (to check that a test notices a wrong cut)."""
    import numpy as np
    flat = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    obj = np.roll(ground_truth, (-shift[1], -shift[0]), axis=(0, 1))
    out = np.empty((flat.shape[0], N, N), np.complex64)
    for k, (x, y) in enumerate(flat):
        c0, r0 = int(round(x)) - N // 2, int(round(y)) - N // 2
        out[k] = obj[r0:r0 + N, c0:c0 + N]
    return out.reshape(*np.shape(centres)[:-1], N, N)


class TruePatchModel:
    """A stand-in for a trained model: ``forward_predict`` returns the true object patches of
    the patterns it is given (looked up by the pattern's bytes, so any batching or order
    works). ``model.probe`` / ``data_config`` are not needed by the inference path."""

    def __init__(self, test, shift=(0, 0)):
        import numpy as np
        import torch
        self.training = False
        self.calls = 0
        self._device = torch.device("cpu")
        truth = cut_true_patches(test.ground_truth, test.centres, test.N, shift)
        self._by_pattern = {np.ascontiguousarray(test.diffraction[i]).tobytes(): truth[i]
                            for i in np.flatnonzero(test.object_index == 0)}

    # the few nn.Module hooks predict_patches uses
    def parameters(self):
        return iter(())

    def buffers(self):
        return iter(())

    def eval(self):
        return self

    def train(self, mode=True):
        return self

    def forward_predict(self, x, positions, probe, input_scale_factor):
        import numpy as np
        import torch
        self.calls += 1
        out = [self._by_pattern[np.ascontiguousarray(p).tobytes()] for p in x.cpu().numpy()]
        return torch.from_numpy(np.stack(out))


@pytest.fixture
def true_patch_model():
    """``true_patch_model(test, shift=(0, 0))``: see :class:`TruePatchModel`."""
    return TruePatchModel


@pytest.fixture(autouse=True)
def _restore_project_loggers():
    """The CLI's ``configure_logging`` adds a stderr handler to the 'ptycho' loggers (once),
    bound to the sys.stderr of that moment (a test's capture stream, closed later). Each
    test starts with the loggers as Python leaves them (no handler, propagating), so an
    in-process CLI run binds its own stream, and gets the earlier state back afterwards."""
    import logging
    saved = {}
    for name in ("ptycho", "ptycho_torch"):
        lg = logging.getLogger(name)
        saved[name] = (list(lg.handlers), lg.level, lg.propagate)
        lg.handlers.clear()
        lg.setLevel(logging.NOTSET)
        lg.propagate = True
    yield
    for name, (handlers, level, propagate) in saved.items():
        lg = logging.getLogger(name)
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


class CodeOnLoad:
    """A pickled object whose unpickling makes the directory ``marker`` (``os.makedirs``):
    the stand-in for any command a shared checkpoint could run when it is loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os
        return (os.makedirs, (self.marker,))


@pytest.fixture
def code_on_load():
    """``code_on_load(marker)``: see :class:`CodeOnLoad`."""
    return CodeOnLoad


#: the flags of a tiny simulated grid-lines study (N = 32, one epoch of a one-block width-8
#: generator; a few seconds on a CPU), for the runner and the study scripts
TINY_STUDY_FLAGS = ["--N", "32", "--object-size", "64", "--n-lines", "40", "--train-stride", "4",
                    "--test-stride", "8", "--n-train-objects", "1", "--n-test-objects", "1",
                    "--epochs", "1", "--batch-size", "16", "--fno-width", "8", "--fno-modes",
                    "4", "--fno-blocks", "1", "--fno-cnn-blocks", "1", "--no-progress-bar"]

#: the flags of a tiny FNO study on a scan file (N = 32; a few seconds on a CPU)
TINY_SCAN_STUDY = ["--N", "32", "--architecture", "fno", "--fno-width", "8", "--fno-modes", "4",
                   "--fno-blocks", "1", "--fno-cnn-blocks", "1", "--epochs", "1",
                   "--num-threads", "1", "--no-progress-bar", "--batch-size", "8"]


def tiny_spiral_scan(path, seed: int, n_frames: int = 64, bad_pixel_fraction: float = 0.0):
    """A Fermat-spiral scan (N = 32, a 2-mode probe, Poisson counts at 1e5 photons) of a
    grid-lines object drawn with ``seed`` (the noise and jitter with ``seed + 1``), written
    as this project's NPZ at ``path``; returns the path."""
    import numpy as np

    from ptycho.datagen.grid_lines import make_object
    from ptycho.datagen.spiral_scan import simulate_spiral_scan
    from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz
    from ptycho.probes import two_mode_probe
    obj = make_object(96, 40, np.random.default_rng(seed))
    scan = simulate_spiral_scan(obj, 32, n_frames, step_px=4.0, jitter_px=0.7,
                                probe_modes=two_mode_probe(32), nphotons=1e5, seed=seed + 1,
                                bad_pixel_fraction=bad_pixel_fraction)
    return write_ptychopinn_npz(path, scan)


def train_tiny_scan_model(npz, out_dir):
    """The tiny FNO of :data:`TINY_SCAN_STUDY` trained on the scan ``npz``; its model.ckpt."""
    from ptycho_torch.cli import study_main
    assert study_main(["--train-npz", str(npz), "--output-dir", str(out_dir),
                       *TINY_SCAN_STUDY]) == 0
    return out_dir / "runs" / "pinn_fno" / "model.ckpt"


def default_sigint() -> None:
    """``preexec_fn`` of a child a test sends SIGINT: the child takes it as from a terminal
    even where the tests run with SIGINT ignored (a background job of a non-interactive
    shell, which Python then keeps ignoring)."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def load_repo_file(relpath: str):
    """The module of a repository file that is not in a package (a script or an example),
    loaded by path, e.g. ``load_repo_file("scripts/docs/flag_reference.py")``."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / relpath
    spec = importlib.util.spec_from_file_location("_" + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
