"""ptycho-live --adapt: the frame window stays bounded and keeps the latest frames; a round
lowers the physics loss on the window's frames; without --adapt the weights are untouched;
refusals; an end-to-end run records its rounds in live.json.

The scan and model: N = 32, 64 Fermat-spiral frames of a grid-lines object (Poisson counts,
a 2-mode probe, a few bad pixels) and a 1-epoch tiny FNO trained on another such scan.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ptycho.config.config import InferenceConfig
from ptycho.config.live_config import LiveConfig, LiveSimConfig
from ptycho.datagen.live_detector import write_live_scan
from ptycho.formats.ptychodus_product import read_product
from ptycho_torch.cli import live_main
from ptycho_torch.model.checkpoint import load_model
from ptycho_torch.pipeline.live import LiveRun
from ptycho_torch.pipeline.live_adapt import FrameWindow
from torch_fixtures import tiny_spiral_scan, train_tiny_scan_model



@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained on one scan and a live file of another (other object and noise)."""
    d = tmp_path_factory.mktemp("adapt")
    ckpt = train_tiny_scan_model(tiny_spiral_scan(d / "train.npz", 3, bad_pixel_fraction=0.005),
                                 d / "study")
    other = tiny_spiral_scan(d / "other.npz", 11, bad_pixel_fraction=0.005)
    source = d / "other.h5"
    write_live_scan(LiveSimConfig(output=str(source), scan=str(other), rate=0, chunk=8),
                    out=open(os.devnull, "w"))
    return ckpt, source


def _cfg(ckpt, source, out, **kw) -> LiveConfig:
    return LiveConfig(checkpoint=str(ckpt), source=str(source), output_dir=str(out),
                      num_threads=1, poll_seconds=0.05, device="cpu", **kw)


def _follow(cfg) -> LiveRun:
    run = LiveRun(cfg, InferenceConfig(stitch_weighting="probe"), Path(cfg.output_dir))
    try:
        run.follow()
    finally:
        run.reader.close()
    return run


def _weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_the_window_is_bounded_and_keeps_the_latest_frames():
    w = FrameWindow(5, 4)
    nbytes = w.nbytes
    for lo, hi in ((0, 3), (3, 4), (4, 11), (11, 13)):
        frames = np.arange(lo, hi)
        w.add(frames[:, None, None] * np.ones((1, 4, 4), np.float32),
              np.stack([frames, -frames], 1).astype(np.float64), frames)
        assert len(w) == min(hi, 5) and w.nbytes == nbytes
    slots = w.ordered()
    assert w.frame[slots].tolist() == [8, 9, 10, 11, 12]
    assert w.amp[slots][:, 2, 3].tolist() == [8, 9, 10, 11, 12]
    assert w.pos[slots][:, 1].tolist() == [-8, -9, -10, -11, -12]
    w.add(np.zeros((9, 4, 4), np.float32), np.zeros((9, 2)), np.arange(100, 109))
    assert w.frame[w.ordered()].tolist() == [104, 105, 106, 107, 108]


@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_a_round_lowers_the_physics_loss_on_the_window(trained, tmp_path, precision):
    """The loss over all 64 frames of the window, computed in float32 by the model's own
    training loss outside the adapter, falls after one round of 6 full-window steps, taken
    in float32 or under bf16-mixed autocast (whose first loss then differs from float32's)."""
    ckpt, source = trained
    run = _follow(_cfg(ckpt, source, tmp_path, adapt=True, adapt_every=1 << 20,
                       adapt_window=64, adapt_batch_size=64, adapt_steps=6, adapt_lr=1e-3))
    adapter, model = run.adapter, run.model
    model.set_precision(precision)
    assert len(adapter.window) == 64 and adapter.rounds == 0
    x = torch.from_numpy(adapter.window.amp[:, None].copy())
    args = (x, torch.zeros(64, 1, 1, 2), torch.full((64, 1, 1, 1),
                                                   float(model.data_config.input_scale)))
    mask = torch.as_tensor(~run.reader.bad_pixels, dtype=torch.float32)
    with torch.no_grad():
        before = float(model.physics_loss(*args, mask=mask))
    probe = model.current_probe()
    got = adapter.round()
    with torch.no_grad():
        after = float(model.physics_loss(*args, mask=mask))
    assert after < before
    assert got["after"] < got["before"]
    if precision == "32":
        assert got["before"] == pytest.approx(before, rel=1e-5)
    else:
        assert got["before"] != before and got["before"] == pytest.approx(before, rel=0.05)
    assert not model.training and torch.equal(model.current_probe(), probe)


def test_without_adapt_the_weights_stay_bit_identical(trained, tmp_path):
    ckpt, source = trained
    frozen = _weights(load_model(str(ckpt), torch.device("cpu")))
    run = _follow(_cfg(ckpt, source, tmp_path / "off"))
    assert run.adapter is None and run.status.adaptation is None
    assert all(torch.equal(frozen[k], v) for k, v in _weights(run.model).items())
    run = _follow(_cfg(ckpt, source, tmp_path / "on", adapt=True, adapt_every=16))
    assert any(not torch.equal(frozen[k], v) for k, v in _weights(run.model).items())


@pytest.mark.parametrize("extra, message", [
    (["--adapt-batch-size", "300"],
     "LiveConfig.adapt_batch_size=300 is larger than adapt_window=256 (allowed: <= "
     "adapt_window) [flag --adapt-batch-size]"),
    (["--adapt-lr", "0"],
     "LiveConfig.adapt_lr=0.0 is out of range (allowed: > 0 and <= 1) [flag --adapt-lr]"),
    (["--adapt-steps", "0"],
     "LiveConfig.adapt_steps=0 is out of range (allowed: 1..10000) [flag --adapt-steps]"),
    (["--adapt-every", "0"],
     "LiveConfig.adapt_every=0 is out of range (allowed: 1..1073741824) [flag --adapt-every]"),
])
def test_bad_adapt_flags_are_refused_in_one_line(extra, message, tmp_path, capsys):
    argv = ["--checkpoint", str(tmp_path / "m.ckpt"), "--source", str(tmp_path / "s.h5"),
            "--output-dir", str(tmp_path / "out"), "--adapt", *extra]
    assert live_main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {message}"]
    assert os.listdir(tmp_path) == []


def test_adapt_end_to_end_records_its_rounds(trained, tmp_path, capsys):
    """64 frames, a round every 16: 4 rounds of 2 steps in live.json. The canvas keeps what
    was stitched: with --frames 16 the only round comes after the 16 frames are stitched,
    so the product is the frozen model's exactly; with --frames 32 the last 16 frames come
    from the adapted model, and the product differs."""
    ckpt, source = trained

    def live(out, *extra):
        return live_main(["--checkpoint", str(ckpt), "--source", str(source), "--output-dir",
                          str(tmp_path / out), "--num-threads", "1", *extra])
    assert live("adapt", "--adapt", "--adapt-every", "16", "--adapt-steps", "2") == 0
    st = json.loads((tmp_path / "adapt" / "live.json").read_text())
    a = st["adaptation"]
    assert st["frames"] == 64 and a["rounds"] == 4 and a["steps"] == 8 and a["seconds"] > 0
    assert a["window_bytes"] == 256 * 32 * 32 * 4 + 256 * 16 + 256 * 8
    assert np.isfinite([a["loss_first_round"]["before"], a["loss_last_round"]["after"]]).all()
    assert st["data_residual"]["n_patterns"] == 64
    assert live("frozen16", "--frames", "16") == 0
    assert live("adapt16", "--frames", "16", "--adapt", "--adapt-every", "16") == 0
    assert json.loads((tmp_path / "adapt16" / "live.json").read_text())["adaptation"][
        "rounds"] == 1
    frozen, adapted = (read_product(tmp_path / d / "product-out.h5")
                       for d in ("frozen16", "adapt16"))
    assert np.array_equal(frozen["object"], adapted["object"])
    # the frames after a round are predicted by the adapted model
    assert live("frozen", "--frames", "32") == 0
    assert live("adapt32", "--frames", "32", "--adapt", "--adapt-every", "16") == 0
    frozen, adapted = (read_product(tmp_path / d / "product-out.h5")
                       for d in ("frozen", "adapt32"))
    assert not np.allclose(frozen["object"], adapted["object"], rtol=1e-3, atol=1e-3)
    capsys.readouterr()
