"""Ptychodus 1.7.0 drives this project as its PtychoPINN-Torch back end, through Ptychodus' own
batch mode (``ptychodus -b train`` / ``-b reconstruct``) as a subprocess.

Needs ``$PTYCHODUS`` (``bash scripts/install_ptychodus.sh`` installs Ptychodus in a venv over
this environment and prints it); ``.ci/run`` runs these tests (``-m ptychodus``). The input is
``make_example_scan.py --from data/run1084_recon3_postPC.npz --layouts ptychodus`` (the real
object, probe and first positions of run 1084, N = 64; the product's object framed on the
scan as Ptychodus frames one) and a ``settings.ini`` of Ptychodus' defaults for a 2-epoch CPU
run.
"""
from __future__ import annotations

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
# Two epochs of Ptychodus' default network; docs/results/2026-12-ptychodus.md has the 30-epoch figures.
MIN_PHASE_CORRELATION = 0.8


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
    assert "Training failed" not in log, _tail(log)
    # the back end trained on the folder's pair, two epochs (its log lines reach Ptychodus')
    assert f"training data {inputs / 'diffraction.h5'}: {N_POSITIONS} patterns" in log, _tail(log)
    assert "epoch 2/2" in log, _tail(log)
    return _only_checkpoint(out)


def test_train_writes_a_weights_only_checkpoint(trained):
    ckpt = torch.load(trained, map_location="cpu", weights_only=True)
    assert ckpt["state_dict"], "empty state_dict"
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values()
               if torch.is_tensor(v) and v.is_floating_point())


def test_reconstruct_keeps_the_input_frame_and_finds_the_object(exe, inputs, trained):
    """``-b reconstruct -i IN2 -o OUT2`` (IN2 = IN + model.ckpt); the product Ptychodus
    writes, read with its own HDF5 product reader. Ptychodus 1.7.0 saves each result the
    reconstructor yields as ``OUT2/product.<progress:06d>.h5`` (``ReconstructBackgroundTask``),
    never ``OUT2/product.h5``; ours yields one, at progress 1."""
    in2 = inputs.parent / "in2"
    shutil.copytree(inputs, in2)
    shutil.copy(trained, in2 / "model.ckpt")
    out2 = inputs.parent / "out2"
    rc, log = run_ptychodus(exe, "reconstruct", in2, out2, inputs.parent / "reconstruct.log")
    assert rc == 0, _tail(log)
    written = sorted(p.name for p in out2.glob("product*.h5"))
    assert written == ["product.000001.h5"], (written, _tail(log))
    before = read_with_ptychodus(exe, inputs / "product.h5", inputs.parent / "before.npz")
    after = read_with_ptychodus(exe, out2 / written[-1], inputs.parent / "after.npz")
    for key in ("shape", "pixel_m", "center_m", "x_m", "y_m", "indexes", "probe"):
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    obj, truth = after["layer0"], before["layer0"]
    assert obj.shape == truth.shape and np.iscomplexobj(obj)
    assert np.isfinite(obj).all()
    assert not np.allclose(obj, truth), "the output object is the input object"
    # the region the stitched central windows (middle_trim = N / 2) cover, inside by 2 px
    m = N // 4 - 2
    r0, r1 = int(np.ceil(before["y_px"].min())) - m, int(np.floor(before["y_px"].max())) + 1 + m
    c0, c1 = int(np.ceil(before["x_px"].min())) - m, int(np.floor(before["x_px"].max())) + 1 + m
    fixed = evaluate_reconstruction(obj[r0:r1, c0:c1], truth[r0:r1, c0:c1])
    scores = evaluate_reconstruction(obj[r0:r1, c0:c1], truth[r0:r1, c0:c1], register=True)
    corr = scores["phase_correlation"]
    print(f"phase correlation with the truth on {r1 - r0} x {c1 - c0} px: {corr:.3f} after "
          f"registration (shift {scores['registration_shift_px']} px), "
          f"{fixed['phase_correlation']:.3f} in the input frame")
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
    assert f"training data {folder / 'train.npz'}: {N_POSITIONS} patterns" in log, _tail(log)
    torch.load(_only_checkpoint(out), map_location="cpu", weights_only=True)


def test_bad_setting_is_refused_in_one_line(exe, tmp_path):
    """``grid_size_x = 3``: exit 1, the refusal one line naming the setting and what is
    allowed, nothing trained. The child's exception reaches Ptychodus as
    ``Training failed: ChildError: Subprocess raised ConfigError:`` and the child's
    traceback, whose last line is the refusal."""
    folder = make_input(tmp_path / "in", SOURCE, N, 20, grid_x=3)
    out = tmp_path / "out"
    rc, log = run_ptychodus(exe, "train", folder, out, tmp_path / "refused.log")
    assert rc == 1, _tail(log)
    assert "Training failed: ChildError: Subprocess raised ConfigError:" in log, _tail(log)
    refusals = {ln for ln in log.splitlines() if "PtychoPINNTorchData.grid_size" in ln}
    assert len(refusals) == 1, _tail(log)
    line = refusals.pop()
    assert line.startswith("ptycho.config.validation.ConfigError: PtychoPINNTorchData.grid_size")
    assert "(2, 3)" in line and "(allowed: " in line, line
    assert not list(out.rglob("*.ckpt")) and not list(out.glob("run_*")), sorted(out.rglob("*"))


def test_the_tensorflow_ptychopinn_back_end_fails_in_one_line_naming_this_one(exe, inputs,
                                                                              tmp_path):
    """Ptychodus also offers its TensorFlow 'PtychoPINN' back end (it finds a package named
    'ptycho'); choosing it fails at once, in Ptychodus' own error line."""
    folder = tmp_path / "in"
    shutil.copytree(inputs, folder)
    (folder / "settings.ini").write_text("[Processing]\nAlgorithm = ptychopinn_pinn\n")
    out = tmp_path / "out"
    rc, log = run_ptychodus(exe, "train", folder, out, tmp_path / "tf.log")
    assert rc == 1, _tail(log)
    assert ("Training failed: TypeError: ptycho.config.config.ModelConfig(model_type=...) is a "
            "TensorFlow PtychoPINN call, but this 'ptycho' is ptychopinn-torch's (in Ptychodus "
            "choose the ptychopinn-torch_unsupervised algorithm)") in log, _tail(log)
