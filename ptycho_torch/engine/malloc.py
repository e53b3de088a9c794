"""glibc's allocator, tuned for CPU training before the first large allocation.

By default glibc serves large blocks (over 128 KiB, growing with use) with ``mmap`` and gives
them back to the OS when freed, and trims the heap top: a training step that allocates and
frees the same large tensors every batch then pays page faults and zeroing for them every
time, which made CPU training 2-3x slower at batch >= 64 (README). :func:`keep_freed_memory`
sets what ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<large>`` set before Python starts:
``mallopt(M_MMAP_MAX, 0)`` (no mmap: freed blocks stay in the heap for reuse) and
``mallopt(M_TRIM_THRESHOLD, 2**31 - 1)`` (the heap is not trimmed). Where the process is
not on glibc (macOS, Windows, musl) nothing is done; where the user set either variable,
their setting is kept.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1      # glibc's malloc.h
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1
ENV_KEYS = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")


def keep_freed_memory() -> str:
    """Apply the settings of the module docstring; returns what was done: ``"mallopt"``,
    ``"environment"`` (the user's variables are kept) or ``"unavailable"`` (not glibc)."""
    if any(k in os.environ for k in ENV_KEYS):
        return "environment"
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
        gnu = libc.gnu_get_libc_version          # glibc only
    except (OSError, AttributeError):
        return "unavailable"
    gnu.restype = ctypes.c_char_p
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return "mallopt" if ok else "unavailable"
