"""The live scan file: the SWMR reader sees frames a writer in another process appends after
it opened the file, waits for late positions, notices a replaced file; ptycho-live-sim's
refusals."""
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ptycho.config.live_config import LiveSimConfig
from ptycho.datagen.live_detector import frame_source, main as sim_main, write_live_scan
from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import simulate_spiral_scan
from ptycho.formats.live_hdf5 import LiveScanReader, SourceReplacedError
from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz
from ptycho.probes import make_probe

REPO = Path(__file__).resolve().parents[2]


def _scan_npz(tmp_path, n):
    obj = make_object(64, 20, np.random.default_rng(0))
    scan = simulate_spiral_scan(obj, 16, n, step_px=3.0, jitter_px=0.5,
                                probe_modes=make_probe(16), nphotons=1e4, seed=1)
    return write_ptychopinn_npz(tmp_path / "src.npz", scan)


def _sim(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "ptycho.datagen.live_detector", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _follow(reader, proc, timeout=60.0):
    """Every (index, position) the reader gives while the writer runs, then until complete."""
    got, t0 = [], time.monotonic()
    while time.monotonic() - t0 < timeout:
        done = proc.poll() is not None and reader.is_complete()
        idx, pats, xy, _ = reader.poll()
        got += [(int(i), tuple(p), float(a.sum())) for i, p, a in zip(idx, xy, pats)]
        if done and not len(idx):
            return got
        time.sleep(0.02)
    raise AssertionError("the writer did not finish")


@pytest.mark.parametrize("layout", ["ptychopinn", "ptychodus", "cxi"])
def test_the_reader_sees_frames_written_after_it_opened_the_file(tmp_path, layout):
    """The writer (another process) creates the file, the reader opens it after the first
    chunk and then receives every frame, each once, with its position (x, y) px and its
    pattern as the simulated source gives them; frame 5's position comes a chunk late:
    frame 13 waits for it and arrives after frame 14."""
    path = tmp_path / "scan.h5"
    args = ["--output", str(path), "--frames", "24", "--N", "16", "--rate", "20", "--chunk",
            "4", "--layout", layout, "--late-position", "13"]
    proc = _sim(*args)
    reader = None
    while reader is None:
        try:
            reader = LiveScanReader(path)      # as soon as the writer turned SWMR on
        except ValueError:
            time.sleep(0.01)
    got = _follow(reader, proc)
    assert proc.wait() == 0
    order = [i for i, _, _ in got]
    assert sorted(order) == list(range(24)) and order.index(13) > order.index(14)
    src = frame_source(LiveSimConfig(output=str(path), frames=24, N=16))
    patterns = np.concatenate([src.chunk(lo, lo + 4) for lo in range(0, 24, 4)])  # as written
    for i, xy, total in got:
        assert xy == pytest.approx(tuple(src.positions[i]), abs=1e-9)
        assert total == float(patterns[i].sum())
    assert reader.pending == [] and reader.layout_name == layout


def test_a_lost_position_stays_pending_and_a_replaced_file_is_noticed(tmp_path):
    path = tmp_path / "scan.h5"
    write_live_scan(LiveSimConfig(output=str(path), frames=12, N=16, rate=0, chunk=4,
                                  lost_position=7), out=open(os.devnull, "w"))
    reader = LiveScanReader(path)
    idx, _, _, _ = reader.poll()
    assert 7 not in idx and len(idx) == 11 and reader.pending == [7] and reader.is_complete()
    write_live_scan(LiveSimConfig(output=str(path), frames=12, N=16, rate=0),
                    out=open(os.devnull, "w"))
    with pytest.raises(SourceReplacedError, match=r"was replaced by a new scan \(another file "
                                                  r"at that path; scan_id [0-9a-f]{32} no longer"):
        reader.poll()
    reader.close()


@pytest.mark.parametrize("argv, message", [
    (["--frames", "10"], "error: --output is required (allowed: a path; see --help)"),
    (["--output", "x.h5", "--rate", "-1"],
     "error: LiveSimConfig.rate=-1.0 is out of range (allowed: 0..1e+07) [flag --rate]"),
    (["--output", "x.h5", "--chunk", "0"],
     "error: LiveSimConfig.chunk=0 is out of range (allowed: 1..1048576) [flag --chunk]"),
    (["--output", "x.h5", "--layout", "nexus"],
     "error: argument --layout: invalid choice: 'nexus' (choose from 'ptychopinn', 'ptychodus', "
     "'cxi') (run with --help to list the flags)"),
])
def test_live_sim_refusals(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sim_main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [message]
    assert os.listdir(tmp_path) == []


def test_live_sim_refuses_more_frames_than_its_scan(tmp_path, capsys):
    src = _scan_npz(tmp_path, 6)
    assert sim_main(["--output", str(tmp_path / "o.h5"), "--scan", str(src), "--frames", "7"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: LiveSimConfig.frames=7 is more than the 6 frames of scan '{src}' "
        "(allowed: 0..6) [flag --frames]")
    assert not (tmp_path / "o.h5").exists()
