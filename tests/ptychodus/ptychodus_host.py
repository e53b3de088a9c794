"""Helpers of the Ptychodus host test: run Ptychodus' own executable, read and export files with
its own code (in its venv), write an input folder.

The executable comes from ``$PTYCHODUS`` (``scripts/install_ptychodus.sh`` prints it). Every
Ptychodus command runs with this checkout first on ``PYTHONPATH``, so Ptychodus' back end
(its parent and its spawned child) imports the ``ptycho`` / ``ptycho_torch`` under test,
whatever editable install the environment holds.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_S = 900

# settings.ini of a small CPU run: Ptychodus' defaults (gridsize 2 with K = 6 x 7 groups per
# position, x/y bounds, CBAM encoder, SiLU amplitude, Poisson loss, probe-weighted stitching)
# except the pattern size, two epochs, the CPU and the inference batch.
SETTINGS = """[Processing]
Algorithm = ptychopinn-torch_unsupervised
[PtychoPINNTorchData]
model_size = {N}
grid_size_x = {grid_x}
[PtychoPINNTorchTraining]
epochs = 2
device = cpu
[PtychoPINNTorchInference]
batch_size = 64
"""


def executable() -> Path:
    """``$PTYCHODUS``, or a test failure naming how to get it (never a skip)."""
    exe = os.environ.get("PTYCHODUS", "")
    if not exe:
        pytest.fail("tests marked 'ptychodus' need $PTYCHODUS, the Ptychodus 1.7.0 executable: "
                    "PTYCHODUS=$(bash scripts/install_ptychodus.sh | tail -1) "
                    "python -m pytest -q -m ptychodus")
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        pytest.fail(f"$PTYCHODUS={exe!r} is not an executable file "
                    "(bash scripts/install_ptychodus.sh prints the right path)")
    return Path(exe)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in
                                         env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_ptychodus(exe: Path, action: str, src: Path, dst: Path, log: Path) -> tuple[int, str]:
    """``exe -b action -i src -o dst``; its exit status and its whole output (also in ``log``)."""
    proc = subprocess.run([str(exe), "-b", action, "-i", str(src), "-o", str(dst)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=_env(), cwd=str(dst.parent), timeout=COMMAND_TIMEOUT_S)
    log.write_text(proc.stdout)
    return proc.returncode, proc.stdout


def venv_python(exe: Path, code: str, *args: str) -> None:
    """Run ``code`` with the Python of Ptychodus' venv (its own modules importable)."""
    proc = subprocess.run([str(exe.parent / "python"), "-c", code, *args], env=_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=COMMAND_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:]


# Ptychodus' own HDF5 product reader plugin -> plain arrays in an NPZ.
READ_PRODUCT = """
import sys, numpy
from pathlib import Path
from ptychodus.plugins.h5_product_file import H5ProductFileIO
p = H5ProductFileIO().read(Path(sys.argv[1]))
g = p.object_.get_geometry()
pos = p.probe_positions
numpy.savez(sys.argv[2], object=p.object_.get_array(), layer0=p.object_.get_layer(0),
            pixel_m=[g.pixel_height_m, g.pixel_width_m], center_m=[g.center_x_m, g.center_y_m],
            shape=[g.height_px, g.width_px], probe=p.probes.get_probe_no_opr().get_array(),
            x_m=pos.get_coordinates_x_m(), y_m=pos.get_coordinates_y_m(),
            indexes=pos.get_indexes(), x_px=g.map_probe_positions_to_object_x_px(pos),
            y_px=g.map_probe_positions_to_object_y_px(pos))
"""

# Ptychodus' own PtychoPINN training-data exporter on the folder's diffraction.h5 + product.h5.
EXPORT_NPZ = """
import sys
from pathlib import Path
from ptychodus.api.io import load_diffraction_data, load_product, save_ptychopinn_training_data
from ptychodus.api.reconstruct import prepare_reconstruct_input
d = Path(sys.argv[1])
data = prepare_reconstruct_input(load_diffraction_data(d / 'diffraction.h5'),
                                 load_product(d / 'product.h5'))
save_ptychopinn_training_data(Path(sys.argv[2]), data)
"""


def read_with_ptychodus(exe: Path, product: Path, out_npz: Path) -> dict:
    venv_python(exe, READ_PRODUCT, str(product), str(out_npz))
    with np.load(out_npz) as z:
        return {k: z[k] for k in z.files}


def make_input(folder: Path, source: Path, N: int, n_positions: int, grid_x: int = 2) -> Path:
    """``folder`` = make_example_scan's Ptychodus pair of ``source`` (its object framed on the
    scan as Ptychodus frames one) + ``settings.ini``."""
    scan = folder.parent / f"{folder.name}_scan"
    proc = subprocess.run([sys.executable, str(REPO / "scripts/studies/make_example_scan.py"),
                           "--from", str(source), "--layouts", "ptychodus", "--N", str(N),
                           "--n-positions", str(n_positions), "--output-dir", str(scan)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    assert proc.returncode == 0, proc.stdout
    (scan / "ptychodus").rename(folder)
    (folder / "settings.ini").write_text(SETTINGS.format(N=N, grid_x=grid_x))
    return folder
