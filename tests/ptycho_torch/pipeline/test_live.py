"""ptycho-live end to end with a tiny model: the final product equals ptycho-reconstruct's on
the same frames; every fault ends with one line and a readable product-live.h5; refusals.

The scan: N = 32, 64 jittered Fermat-spiral positions on a grid-lines object, a 2-mode probe,
Poisson counts, a few bad pixels; the model: a 1-epoch FNO trained on it (seconds).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ptycho.config.live_config import LiveSimConfig
from ptycho.datagen.live_detector import write_live_scan
from ptycho.formats.ptychodus_product import read_product
from ptycho_torch.cli import live_main, reconstruct_main
from ptycho_torch.ptychi import IterativeUnavailableError
from ptycho_torch.pipeline import live as live_pipeline
from torch_fixtures import default_sigint, tiny_spiral_scan, train_tiny_scan_model

REPO = Path(__file__).resolve().parents[3]
ENV = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("live")
    npz = tiny_spiral_scan(d / "scan.npz", 3, bad_pixel_fraction=0.005)
    return npz, train_tiny_scan_model(npz, d / "study")


def _sim_args(npz, path, *extra):
    return ["--output", str(path), "--scan", str(npz), "--chunk", "8", *extra]


def _sim(npz, path, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ptycho.datagen.live_detector",
                             *_sim_args(npz, path, *extra)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _write(npz, path, **faults):
    write_live_scan(LiveSimConfig(output=str(path), scan=str(npz), rate=0, chunk=8, **faults),
                    out=open(os.devnull, "w"))


def _live(ckpt, source, out, *extra):
    return live_main(["--checkpoint", str(ckpt), "--source", str(source), "--output-dir",
                      str(out), "--num-threads", "1", "--poll-seconds", "0.05", *extra])


def _status(out) -> dict:
    return json.loads((out / "live.json").read_text())


def test_live_product_equals_ptycho_reconstruct(trained, tmp_path, capsys):
    """The detector writes 64 frames at 100 frames/s while ptycho-live follows; its final
    product-out.h5 is ptycho-reconstruct's for the finished scan (same model, same frames,
    --stitch-weighting probe, the live default), and product-live.h5 the whole canvas."""
    npz, ckpt = trained
    source = tmp_path / "scan.h5"
    proc = _sim(npz, source, "--rate", "100")
    while not source.exists():
        time.sleep(0.01)
    assert _live(ckpt, source, tmp_path / "live", "--every-frames", "16") == 0
    assert proc.wait() == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("live: 64 frames stitched (0 left out: 0 nan or inf, 0 saturated, "
                           "0 no position), ") and "end: the writer completed the scan" in line
    assert reconstruct_main(["--checkpoint", str(ckpt), "--data", str(npz), "--output-dir",
                             str(tmp_path / "rec"), "--stitch-weighting", "probe"]) == 0
    live, ref = (read_product(tmp_path / d / "product-out.h5") for d in ("live", "rec"))
    assert live["object"].shape == ref["object"].shape
    assert np.allclose(live["object"], ref["object"], rtol=1e-5, atol=1e-5)
    assert np.allclose(live["x_m"], ref["x_m"], atol=1e-12)
    assert np.allclose(live["y_m"], ref["y_m"], atol=1e-12)
    assert np.array_equal(live["probe"], ref["probe"])
    st = _status(tmp_path / "live")
    assert st["state"] == "ended" and st["frames"] == 64 and st["snapshots"] >= 2
    metrics = json.loads((tmp_path / "rec" / "metrics.json").read_text())
    assert st["data_residual"]["amplitude_mae"] == pytest.approx(
        metrics["data_residual"]["amplitude_mae"], rel=0.02)
    whole = read_product(tmp_path / "live" / "product-live.h5")
    assert whole["object"].shape[0] > live["object"].shape[0] and len(whole["x_m"]) == 64


def test_a_writer_that_dies_mid_scan_ends_after_quiet_seconds(trained, tmp_path, capsys):
    npz, ckpt = trained
    source = tmp_path / "scan.h5"
    proc = _sim(npz, source, "--rate", "0", "--die-after", "20")
    assert proc.wait() == 0 and "stopped after 20 frames without closing" in proc.stdout.read()
    assert _live(ckpt, source, tmp_path / "live", "--quiet-seconds", "0.5") == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].split("; end: ")[1].startswith(
        "no new frame for 0.5 s (--quiet-seconds): the writer stopped without closing the file")
    product = read_product(tmp_path / "live" / "product-live.h5")
    assert len(product["x_m"]) == 20 and np.isfinite(product["object"]).all()


def test_bad_frames_and_a_lost_position_are_left_out_and_counted(trained, tmp_path, capsys):
    npz, ckpt = trained
    source = tmp_path / "scan.h5"
    _write(npz, source, nan_frame=5, saturate_frame=9, lost_position=30)
    assert _live(ckpt, source, tmp_path / "live", "--saturation", "1e8") == 0
    err = capsys.readouterr().err.splitlines()
    assert "frame 5 left out: 1 NaN or inf pixels" in err
    assert "frame 9 left out: 1 saturated pixels (>= 1e+08)" in err
    assert "1 frame(s) never got a position (first: frame 30); left out" in err
    st = _status(tmp_path / "live")
    assert st["frames"] == 61 and st["left_out"] == {"nan_or_inf": 1, "saturated": 1,
                                                      "no_position": 1}
    assert len(read_product(tmp_path / "live" / "product-out.h5")["x_m"]) == 61


def test_frames_flag_ends_the_scan(trained, tmp_path, capsys):
    npz, ckpt = trained
    source = tmp_path / "scan.h5"
    _write(npz, source)
    assert _live(ckpt, source, tmp_path / "live", "--frames", "24") == 0
    assert "; end: --frames 24 reached; " in capsys.readouterr().out
    assert _status(tmp_path / "live")["frames"] == 24


def test_a_file_replaced_by_a_new_scan_stops_the_run(trained, tmp_path, capsys):
    """While the first scan is written (20 frames/s), a new scan replaces the file: ptycho-live
    stops with one line and its last product-live.h5 stays readable."""
    npz, ckpt = trained
    source = tmp_path / "scan.h5"
    proc = _sim(npz, source, "--rate", "20")
    out = tmp_path / "live"
    while not source.exists():
        time.sleep(0.01)

    def replace_when_first_written():
        while not (out / "product-live.h5").exists():
            time.sleep(0.02)
        proc.kill()
        _write(npz, source)
    t = threading.Thread(target=replace_when_first_written, daemon=True)
    t.start()
    assert _live(ckpt, source, out, "--every-frames", "8") == 0
    t.join()
    proc.wait()
    end = capsys.readouterr().out.strip().splitlines()[-1].split("; end: ")[1]
    assert end.startswith(f"source '{source}' was replaced by a new scan (another file at that "
                          "path; scan_id ")
    assert read_product(out / "product-live.h5")["object"].size > 0
    assert not (out / "product-out.h5").exists()


def test_ctrl_c_leaves_the_last_live_product_valid(trained, tmp_path):
    npz, ckpt = trained
    source = tmp_path / "scan.h5"
    # the writer stops after 16 frames without closing the file and the reader waits 600 s
    # for more, so the scan cannot end on its own before the signal, however slow the machine
    proc = _sim(npz, source, "--rate", "16", "--die-after", "16")
    out = tmp_path / "live"
    live = subprocess.Popen([sys.executable, "-c", "import sys; from ptycho_torch.cli import "
                             "live_main; sys.exit(live_main(sys.argv[1:]))", "--checkpoint",
                             str(ckpt), "--source", str(source), "--output-dir", str(out),
                             "--num-threads", "1", "--every-frames", "8",
                             "--quiet-seconds", "600"], env=ENV, preexec_fn=default_sigint,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not (out / "product-live.h5").exists():
        time.sleep(0.02)
    live.send_signal(signal.SIGINT)
    _, err = live.communicate(timeout=60)
    proc.kill()
    assert live.returncode == 130
    assert err.strip().splitlines()[-1] == ("error: interrupted (SIGINT); product-live.h5 holds "
                                            "the frames of the last snapshot, a valid product")
    assert np.isfinite(read_product(out / "product-live.h5")["object"]).all()
    # no temporary file left behind, no end-of-scan product
    assert {p.name for p in out.iterdir()} <= {"live.json", "live.png", "product-live.h5"}


@pytest.mark.parametrize("polling", [False, True])
def test_a_folder_source_gives_the_product_of_the_same_frames_in_hdf5(trained, tmp_path, capsys,
                                                                      polling):
    """A detector writing one file per chunk into a folder (50 frames/s, frame 12's position
    a chunk late), followed with watchdog's kernel events or its PollingObserver: the same
    product-out.h5 as the same frames in one SWMR HDF5 file."""
    npz, ckpt = trained
    folder = tmp_path / "frames"
    proc = _sim(npz, folder, "--directory", "--rate", "50", "--late-position", "12")
    while not (folder / "scan.npz").exists():
        time.sleep(0.01)
    assert _live(ckpt, folder, tmp_path / "live", *(["--polling-observer"] if polling else [])) == 0
    assert proc.wait() == 0
    assert "end: the writer completed the scan" in capsys.readouterr().out
    _write(npz, tmp_path / "scan.h5")
    assert _live(ckpt, tmp_path / "scan.h5", tmp_path / "ref") == 0
    got, ref = (read_product(tmp_path / d / "product-out.h5") for d in ("live", "ref"))
    assert len(got["x_m"]) == 64 and np.allclose(got["object"], ref["object"], atol=1e-6)


@pytest.mark.parametrize("extra, message", [
    (["--every-frames", "0", "--every-seconds", "0"],
     "LiveConfig.every_frames=0 with every_seconds=0 never writes the live product (allowed: "
     "either > 0) [flag --every-frames]"),
    (["--quiet-seconds", "0"],
     "LiveConfig.quiet_seconds=0.0 is out of range (allowed: > 0 and <= 86400) "
     "[flag --quiet-seconds]"),
    (["--stitch", "tiles"],
     "InferenceConfig.stitch='tiles' needs every patch at once; ptycho-live stitches chunk by "
     "chunk (allowed: --stitch positions, --no-align-phase)"),
    (["--align-phase"],
     "InferenceConfig.align_phase=True needs every patch at once; ptycho-live stitches chunk "
     "by chunk (allowed: --stitch positions, --no-align-phase)"),
])
def test_bad_flags_are_refused_in_one_line(extra, message, tmp_path, capsys):
    assert _live(tmp_path / "m.ckpt", tmp_path / "s.h5", tmp_path / "out", *extra) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {message}"]
    assert os.listdir(tmp_path) == []


def test_refusals_before_any_work(trained, tmp_path, capsys, monkeypatch):
    npz, ckpt = trained
    assert live_main(["--checkpoint", str(ckpt)]) == 2
    assert capsys.readouterr().err.strip() == ("error: --source is required (allowed: a path; "
                                               "see --help)")
    missing = tmp_path / "none.h5"
    assert _live(ckpt, missing, tmp_path / "out") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: dataset '{missing}': key 'file' does not exist (expected a scan file being "
        "written by the detector (ptycho-live-sim writes one)) [flag --source]")

    def unavailable():
        raise IterativeUnavailableError("no module named 'ptychi'")
    monkeypatch.setattr(live_pipeline, "import_ptychi", unavailable)
    assert _live(ckpt, missing, tmp_path / "out", "--refine", "lsqml") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: LiveConfig.refine='lsqml' needs Pty-chi, which cannot be imported here (no "
        "module named 'ptychi') (allowed without it: 'none') [flag --refine]")
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "product-live.h5").write_bytes(b"")
    assert _live(ckpt, missing, tmp_path / "out") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: output_dir={str(tmp_path / 'out')!r} already holds a live reconstruction "
        "(product-live.h5); pass --overwrite to replace it or choose another --output-dir")


@pytest.mark.iterative
def test_refine_lsqml_polishes_the_finished_scan(trained, tmp_path):
    """--refine lsqml: product-out.h5 holds the LSQML-polished object and probe, whose data
    residual is below the network's."""
    npz, ckpt = trained
    _write(npz, tmp_path / "scan.h5")
    assert _live(ckpt, tmp_path / "scan.h5", tmp_path / "live", "--refine", "lsqml",
                 "--refine-epochs", "3") == 0
    st = _status(tmp_path / "live")
    assert st["refined"]["engine"] == "lsqml" and st["refined"]["epochs"] == 3
    assert st["refined"]["data_residual"]["amplitude_mae"] < st["data_residual"]["amplitude_mae"]
    r = st["refined"]   # the parts' wall seconds lie inside the whole
    assert 0 < r["lsqml_s"] <= r["polish_s"] and 0 < r["network_s"]
    assert r["network_s"] + r["polish_s"] <= r["seconds"]
    polished = read_product(tmp_path / "live" / "product-out.h5")
    network = read_product(tmp_path / "live" / "product-live.h5")
    assert not np.allclose(polished["probe"], network["probe"])
