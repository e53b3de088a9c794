"""An interrupted study exits non-zero: 130 for SIGINT (Ctrl-C), 143 = 128 + 15 for SIGTERM
(``kill``, a batch system's time limit), with the resume message and no metrics.json, so a
batch system never records a killed run as a success (docs/reference/reliability.md, exit codes)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ptycho_torch.cli import run_entry
from ptycho_torch.engine.interrupts import Interrupted
from torch_fixtures import default_sigint

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "studies" / "grid_lines_torch_runner.py"


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_training_exits_with_128_plus_its_number(tiny_paths, tmp_path, sig,
                                                                 code):
    """The real script, signalled as soon as its first checkpoint exists (500 epochs
    requested, so it is still training)."""
    out = tmp_path / "study"
    last = out / ".work" / "pinn_fno" / "checkpoints" / "last.ckpt"
    cmd = [sys.executable, str(SCRIPT), "--N", "32", "--test-stride", "8", "--architecture",
           "fno", "--fno-width", "8", "--fno-modes", "4", "--fno-blocks", "1",
           "--fno-cnn-blocks", "1", "--batch-size", "4", "--epochs", "500", "--num-threads", "1",
           "--no-progress-bar", "--train-npz", str(tiny_paths.train), "--test-npz",
           str(tiny_paths.test), "--output-dir", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + 120
    try:
        while not last.exists():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.time() < deadline, "no checkpoint within 120 s"
            time.sleep(0.01)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    name = signal.Signals(sig).name
    assert proc.returncode == code, err[-3000:]
    assert err.strip().splitlines()[-2:] == [
        "training interrupted: no metrics.json written; continue with --resume",
        f"error: interrupted ({name}); resume with --resume"]
    assert "Traceback" not in err
    assert last.is_file() and not (out / "runs" / "pinn_fno" / "metrics.json").exists()


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_run_entry_turns_a_signal_into_its_exit_code(capsys, sig, code):
    """In process: the signal reaches the handler run_entry installs for the run (not the
    one installed before it, which comes back afterwards)."""
    def run(_):
        os.kill(os.getpid(), sig)
        time.sleep(30)                         # the handler raises long before this ends
        raise AssertionError("the signal did not stop the run")

    def before(signum, frame):
        raise AssertionError("the signal reached the handler installed before the run")
    previous = signal.signal(sig, before)
    try:
        assert run_entry(lambda: None, run, interrupted="resume with --resume") == (code, None)
        assert signal.getsignal(sig) is before
    finally:
        signal.signal(sig, previous)
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: interrupted ({signal.Signals(sig).name}); resume with --resume"]


def test_interrupted_is_not_an_exception_or_a_keyboard_interrupt():
    """``except Exception`` never swallows it, and Lightning (which turns a
    KeyboardInterrupt into ``sys.exit(1)``) re-raises it unchanged."""
    err = Interrupted(signal.SIGTERM)
    assert not isinstance(err, (Exception, KeyboardInterrupt)) and err.exit_code == 143
