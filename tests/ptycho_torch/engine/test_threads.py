"""How many CPU threads a command takes (ptycho_torch.engine.threads) and the training heartbeat."""
import logging
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from ptycho_torch.engine import threads
from ptycho_torch.engine.callbacks import Heartbeat, format_heartbeat


@pytest.fixture
def no_omp_env(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("usable,busy,expected", [(4, 0.0, 4), (4, 1.4, 3), (4, 1.6, 2),
                                                  (2, 1.0, 1), (2, 3.8, 1), (1, 0.0, 1)])
def test_the_default_is_the_usable_cpus_other_work_leaves_free(no_omp_env, monkeypatch, usable,
                                                               busy, expected):
    monkeypatch.setattr(threads, "usable_cpus", lambda: usable)
    monkeypatch.setattr(threads, "busy_cpus", lambda: busy)
    n, why = threads.choose_threads(0)
    assert n == expected
    assert why == f"{usable} usable CPUs, {busy:.1f} busy with other work"


def test_an_explicit_count_or_omp_num_threads_pins_it(no_omp_env, monkeypatch):
    monkeypatch.setattr(threads, "busy_cpus", lambda: pytest.fail("sampled although pinned"))
    assert threads.choose_threads(3) == (3, "--num-threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    assert threads.choose_threads(0) == (1, "OMP_NUM_THREADS")


def test_apply_sets_torch_and_says_why(no_omp_env, monkeypatch):
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    monkeypatch.setattr(threads, "busy_cpus", lambda: 1.0)
    chosen = threads.apply_num_threads(0)
    assert chosen == (1, "2 usable CPUs, 1.0 busy with other work")
    assert torch.get_num_threads() == 1
    assert threads.threads_line(*chosen) == ("torch CPU threads: 1 (2 usable CPUs, 1.0 busy "
                                             "with other work; --num-threads pins it)")


def test_a_cgroup_quota_caps_the_usable_cpus(monkeypatch, tmp_path):
    quota = tmp_path / "cpu.max"
    quota.write_text("50000 100000\n")             # half a CPU
    monkeypatch.setattr(threads, "_CGROUP_V2", quota)
    assert threads.usable_cpus() == 1
    quota.write_text("max 100000\n")
    assert threads.usable_cpus() == len(os.sched_getaffinity(0))


def test_busy_cpus_sees_another_process_spinning():
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        threads.busy_cpus(0.2)                       # let it start
        assert threads.busy_cpus(0.5) > 0.5
    finally:
        burner.kill()
        burner.wait()


@pytest.mark.parametrize("step,total,rate,line", [
    (120, 2520, 0.85, "training: step 120/2520, 0.85 steps/s, about 47 min left"),
    (10, 40, 1.0, "training: step 10/40, 1 steps/s, about 30 s left"),
    (7, None, 2.5, "training: step 7, 2.5 steps/s"),
    (40, 40, 3.0, "training: step 40/40, 3 steps/s"),
])
def test_heartbeat_lines(step, total, rate, line):
    assert format_heartbeat(step, total, rate) == line


def test_heartbeat_speaks_every_30_seconds_of_training(caplog):
    now = [0.0]
    beat = Heartbeat(logging.getLogger("hb"), clock=lambda: now[0])
    trainer = SimpleNamespace(global_step=0, estimated_stepping_batches=100, is_global_zero=True)
    beat.on_train_start(trainer, None)
    with caplog.at_level(logging.INFO, logger="hb"):
        for step in range(1, 11):                   # 10 steps, 4 s each
            now[0], trainer.global_step = 4.0 * step, step
            beat.on_train_batch_end(trainer, None, None, None, step)
    assert caplog.messages == ["training: step 8/100, 0.25 steps/s, about 6 min left"]
