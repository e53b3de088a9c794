"""Interruptions by a signal, and the exit status they give (``128 + signal number``).

A command (``ptycho_torch.cli.run_entry``) runs inside :func:`signals_interrupt`: SIGINT
(Ctrl-C) and SIGTERM (what ``kill``, a batch system's time limit or a pre-emption sends)
then raise :class:`Interrupted`, which unwinds the work like Ctrl-C (temporary files and
folders are removed, ``metrics.json`` is never written) and ends the command with status
130 (SIGINT) or 143 (SIGTERM): a batch system records the run as failed, and the message
says how to continue it. Lightning's own SIGTERM handler, installed while it trains, calls
the one installed here after its own; a SIGTERM that reaches Lightning without it (a study
run from Python) ends training with its ``SIGTERMException``, which
:func:`ptycho_torch.pipeline.study.train_study_model` turns into :class:`Interrupted` too.
"""
from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["Interrupted", "signals_interrupt"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """The run was stopped by the signal ``signum``; ``exit_code`` is ``128 + signum``.

    A ``BaseException`` (like ``KeyboardInterrupt``), so ``except Exception`` never
    swallows it; not a ``KeyboardInterrupt``, which Lightning turns into ``sys.exit(1)``."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise(signum, _frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_interrupt():
    """SIGINT and SIGTERM raise :class:`Interrupted` inside the block; the previous
    handlers come back after it. A signal the process was started to ignore (``nohup``, a
    background job of a script) stays ignored; outside the main thread (where Python
    allows no signal handler) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in SIGNALS
                if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
