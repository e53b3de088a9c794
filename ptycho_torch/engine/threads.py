"""How many torch CPU threads a command uses: the CPUs it may use that other work leaves free.

On a shared machine (a beamline workstation, a cluster node) torch's default, one thread per
core, makes its OpenMP threads wait on cores that other processes hold: a training step of
the quick preset's generator took 464 ms with two threads beside one other CPU-bound process
on a 2-core machine, 150 ms with one thread, and 112 ms with two on the idle machine
(``scripts/benchmarks/threads.py`` measures it on yours). So, unless told otherwise,
:func:`apply_num_threads` chooses

    threads = max(1, usable CPUs - CPUs busy with other work)

once, when each run starts (the caller logs :func:`threads_line` once its input checks
have passed, so a refusal stays one line):

- usable CPUs (:func:`usable_cpus`): the process's CPU affinity, capped by a cgroup CPU
  quota (containers, batch jobs), not the machine's core count;
- busy CPUs (:func:`busy_cpus`): the non-idle share of those CPUs over a quarter of a
  second, read from ``/proc/stat`` (0 where it cannot be read).

``--num-threads N`` (N > 0) pins the count, and so does ``OMP_NUM_THREADS`` in the
environment (torch follows it). The count is fixed for the whole run, because results
depend, in their last digits, on the thread count. A run is reproduced bit for bit by
passing the logged count.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch

__all__ = ["apply_num_threads", "busy_cpus", "choose_threads", "threads_line", "usable_cpus"]

_CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))


def _quota() -> float | None:
    """The cgroup CPU quota in CPUs, or None when there is none."""
    try:
        if _CGROUP_V2.is_file():
            quota, period = _CGROUP_V2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if _CGROUP_V1[0].is_file():
            quota = int(_CGROUP_V1[0].read_text())
            return None if quota <= 0 else quota / int(_CGROUP_V1[1].read_text())
    except (OSError, ValueError):
        return None
    return None


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity, capped by a cgroup quota (>= 1)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _quota()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def _cpu_times() -> list[tuple[int, int]] | None:
    """(busy, total) jiffies of each CPU from /proc/stat, or None."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    out = []
    for line in lines:
        parts = line.split()
        if parts and parts[0].startswith("cpu") and parts[0] != "cpu":
            v = [int(x) for x in parts[1:]]
            idle = v[3] + (v[4] if len(v) > 4 else 0)        # idle + iowait
            out.append((sum(v) - idle, sum(v)))
    return out or None


def busy_cpus(sample_s: float = 0.25) -> float:
    """CPUs' worth of work other processes ran over ``sample_s`` (this process sleeps
    meanwhile), over the CPUs this process may use; 0.0 where /proc/stat is unreadable."""
    before = _cpu_times()
    time.sleep(sample_s)
    after = _cpu_times()
    if before is None or after is None or len(before) != len(after):
        return 0.0
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = list(range(len(after)))
    busy = 0.0
    for i in allowed:
        if i < len(after):
            db, dt = after[i][0] - before[i][0], after[i][1] - before[i][1]
            busy += db / dt if dt > 0 else 0.0
    return busy


def choose_threads(num_threads: int = 0) -> tuple[int, str]:
    """``(threads, why)``: ``num_threads`` when > 0, ``OMP_NUM_THREADS``'s count when set,
    else the usable CPUs that other work leaves free (module docstring)."""
    if num_threads and num_threads > 0:
        return int(num_threads), "--num-threads"
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return torch.get_num_threads(), "OMP_NUM_THREADS"
    usable = usable_cpus()
    busy = busy_cpus()
    n = max(1, min(usable, usable - int(round(busy))))
    return n, f"{usable} usable CPUs, {busy:.1f} busy with other work"


def apply_num_threads(num_threads: int = 0) -> tuple[int, str]:
    """Set torch's CPU threads by :func:`choose_threads`; returns ``(threads, why)``. Every
    entry point that computes calls it first, whether or not it trains."""
    n, why = choose_threads(num_threads)
    torch.set_num_threads(n)
    return n, why


def threads_line(threads: int, why: str) -> str:
    """``torch CPU threads: 1 (2 usable CPUs, 1.0 busy with other work; --num-threads pins
    it)``: the log line of a choice."""
    return f"torch CPU threads: {threads} ({why}; --num-threads pins it)"
