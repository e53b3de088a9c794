"""Ptychodus 1.7.0 drives this project as its PtychoPINN-Torch back end, through Ptychodus' own
batch mode (``ptychodus -b train`` / ``-b reconstruct``) as a subprocess.

Needs ``$PTYCHODUS`` (``bash scripts/install_ptychodus.sh`` installs Ptychodus in a venv over
this environment and prints it); ``.ci/run`` runs these tests (``-m ptychodus``). The input is
``make_example_scan.py --from data/run1084_recon3_postPC.npz --layouts ptychodus`` (the real
object, probe and first positions of run 1084, N = 64; the product's object framed on the
scan as Ptychodus frames one) and a ``settings.ini`` for a 2-epoch CPU run.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ptycho.evaluation import evaluate_reconstruction
from ptychodus_host import (  # this folder's helpers
    EXPORT_NPZ,
    REPO,
    executable,
    make_input,
    read_with_ptychodus,
    run_ptychodus,
    venv_python,
)

pytestmark = pytest.mark.ptychodus

SOURCE = REPO / "data" / "run1084_recon3_postPC.npz"
N = 64
N_POSITIONS = 200
# Loose: two epochs of a width-1 CNN. Printed by the test; the real gate comes later.
MIN_PHASE_CORRELATION = 0.2


def _tail(log: str, n: int = 40) -> str:
    return "\n".join(log.splitlines()[-n:])


def _only_checkpoint(out: Path) -> Path:
    found = sorted(out.rglob("model.ckpt"))
    assert len(found) == 1, f"expected one model.ckpt under {out}, found {found}"
    return found[0]


@pytest.fixture(scope="module")
def exe() -> Path:
    return executable()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    return make_input(tmp_path_factory.mktemp("host") / "in", SOURCE, N, N_POSITIONS)


@pytest.fixture(scope="module")
def trained(exe, inputs) -> Path:
    """``-b train -i IN -o OUT``: the checkpoint the back end left under OUT."""
    out = inputs.parent / "out"
    rc, log = run_ptychodus(exe, "train", inputs, out, inputs.parent / "train.log")
    assert rc == 0, _tail(log)
    assert "ptychopinn-torch_unsupervised" in log or "PtychoPINN-Torch" in log, _tail(log)
    assert "Training failed" not in log, _tail(log)
    return _only_checkpoint(out)


def test_train_writes_a_weights_only_checkpoint(trained):
    ckpt = torch.load(trained, map_location="cpu", weights_only=True)
    assert ckpt["state_dict"], "empty state_dict"
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values()
               if torch.is_tensor(v) and v.is_floating_point())


def test_reconstruct_keeps_the_input_frame_and_finds_the_object(exe, inputs, trained):
    """``-b reconstruct -i IN2 -o OUT2`` (IN2 = IN + model.ckpt); OUT2/product.h5 read with
    Ptychodus' own HDF5 product reader."""
    in2 = inputs.parent / "in2"
    shutil.copytree(inputs, in2)
    shutil.copy(trained, in2 / "model.ckpt")
    out2 = inputs.parent / "out2"
    rc, log = run_ptychodus(exe, "reconstruct", in2, out2, inputs.parent / "reconstruct.log")
    assert rc == 0, _tail(log)
    assert (out2 / "product.h5").is_file(), _tail(log)
    before = read_with_ptychodus(exe, inputs / "product.h5", inputs.parent / "before.npz")
    after = read_with_ptychodus(exe, out2 / "product.h5", inputs.parent / "after.npz")
    for key in ("shape", "pixel_m", "center_m", "x_m", "y_m", "indexes", "probe"):
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    obj, truth = after["layer0"], before["layer0"]
    assert obj.shape == truth.shape and np.iscomplexobj(obj)
    assert np.isfinite(obj).all()
    assert not np.allclose(obj, truth), "the output object is the input object"
    # the region every stitched patch centre (middle_trim = N/2) covers, inside by 2 px
    r0, r1 = int(np.ceil(before["y_px"].min())), int(np.floor(before["y_px"].max())) + 1
    c0, c1 = int(np.ceil(before["x_px"].min())), int(np.floor(before["x_px"].max())) + 1
    scores = evaluate_reconstruction(obj[r0:r1, c0:c1], truth[r0:r1, c0:c1], register=True)
    corr = scores["phase_correlation"]
    print(f"phase correlation with the truth after registration: {corr:.3f} "
          f"(shift {scores['registration_shift_px']} px, region {r1 - r0} x {c1 - c0} px)")
    assert corr > MIN_PHASE_CORRELATION


def test_train_from_ptychodus_exported_npz(exe, inputs):
    """The folder holds Ptychodus' own PtychoPINN export (``save_ptychopinn_training_data``;
    ``-b`` has no export action) beside the pair ``-b`` requires; training reads it."""
    folder = inputs.parent / "in_npz"
    shutil.copytree(inputs, folder)
    venv_python(exe, EXPORT_NPZ, str(folder), str(folder / "train.npz"))
    with np.load(folder / "train.npz") as z:
        assert z["diff3d"].shape == (N_POSITIONS, N, N)
    out = inputs.parent / "out_npz"
    rc, log = run_ptychodus(exe, "train", folder, out, inputs.parent / "train_npz.log")
    assert rc == 0, _tail(log)
    torch.load(_only_checkpoint(out), map_location="cpu", weights_only=True)


def test_bad_setting_is_refused_in_one_line(exe, tmp_path):
    """``grid_size_x = 3``: exit 1, one log line naming the setting, nothing trained."""
    folder = make_input(tmp_path / "in", SOURCE, N, 20, grid_x=3)
    out = tmp_path / "out"
    rc, log = run_ptychodus(exe, "train", folder, out, tmp_path / "refused.log")
    assert rc == 1, _tail(log)
    refusal = re.compile(r"Training failed: .*PtychoPINNTorchData\.grid_size")
    lines = [ln for ln in log.splitlines() if refusal.search(ln)]
    assert len(lines) == 1, _tail(log)
    assert "allowed" in lines[0]
    assert not list(out.rglob("*.ckpt"))
