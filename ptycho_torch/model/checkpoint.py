"""A model file is data, not code: every checkpoint this project reads loads weights only.

A checkpoint written by this project holds tensors (weights, buffers such as the complex
probe, optimizer, scheduler and weight-average state) and plain values (``dict``,
``list``, ``tuple``, ``str``, ``int``, ``float``, ``bool``, ``None``: the configs'
``to_dict`` forms, the per-epoch history, Lightning's loop counters and version). So it
unpickles with ``torch.load(..., weights_only=True)``, torch's restricted unpickler that
builds tensors and those containers and calls nothing else, with no
``torch.serialization.add_safe_globals`` allow-list. A model someone shares cannot run code
on the machine that loads it.

A file holding any other Python object (a pickled class instance, or a payload whose
``__reduce__`` runs a command when unpickled) is refused in one line naming the file and
the globals torch found (:class:`UntrustedCheckpointError`), before anything is read into
a model or written. ``trust=True`` (the command lines' ``--trust-checkpoint``) unpickles such
a file in full: only for a file from a source the user trusts, e.g. one written by another
program that pickled its own objects.

Every loader goes through here: ``ptycho-reconstruct`` and the reused, refined and dose
rows (:func:`load_model`), ``--reuse-models``' check of each model's size and ``--resume``
(:func:`load_checkpoint`); Lightning's own read of ``last.ckpt`` on ``--resume`` gets
:func:`lightning_weights_only` as ``trainer.fit(weights_only=...)``.
"""
from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path

import torch

from ptycho.config.validation import StudyError
from ptycho_torch.model import PtychoPINN_Lightning

log = logging.getLogger(__name__)
TRUST_FLAG = "--trust-checkpoint"
_WEIGHTS_ONLY_FAILED = "Weights only load failed"
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


class UntrustedCheckpointError(StudyError):
    """A checkpoint that does not load as weights and plain values (refused without trust).

    ``path``: the file; ``names``: the globals torch's weights-only loader refused."""

    def __init__(self, path, names: list[str], flag: str | None = None):
        self.path, self.names = Path(path), list(names)
        shown = ", ".join(self.names[:3]) + (f" and {len(self.names) - 3} more"
                                             if len(self.names) > 3 else "")
        hint = f" [flag {flag}]" if flag else ""
        super().__init__(f"checkpoint '{self.path}' holds Python objects beyond weights and plain "
                         f"values ({shown or 'an object the weights-only loader refuses'}), "
                         f"which can run code when loaded (allowed: weights and plain values; "
                         f"pass {TRUST_FLAG} to load it anyway, only if you trust the file's "
                         f"source){hint}")


def lightning_weights_only(trust: bool) -> bool:
    """The ``weights_only`` to pass to Lightning (``trainer.fit``, ``load_from_checkpoint``):
    always explicit, so neither torch's default nor ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
    decides it."""
    return not trust


def refused_globals(path, err: BaseException) -> list[str] | None:
    """The globals that made the weights-only load of ``path`` fail with ``err``, sorted
    (from torch's static scan of the file, else from its message); None when ``err`` is not
    a weights-only refusal (a damaged file, say)."""
    try:
        names = sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path))))
    except Exception:  # noqa: BLE001 - a file torch cannot scan: fall back on the message
        names = []
    if not names and isinstance(err, pickle.UnpicklingError):
        names = sorted(set(_GLOBAL.findall(str(err))))
    if names or _WEIGHTS_ONLY_FAILED in str(err):
        return names
    return None


def load_checkpoint(path, *, trust: bool = False, map_location="cpu",
                    flag: str | None = None) -> dict:
    """The checkpoint dict of ``path``, loaded weights only; a file holding other Python
    objects raises :class:`UntrustedCheckpointError` (``[flag <flag>]`` appended) unless
    ``trust``, when it is unpickled in full (logged). Other failures (a missing, truncated
    or damaged file) propagate as torch raises them."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        names = _untrusted(path, err, trust, flag)
    log.warning("%s: loading its Python objects (%s) because of %s", path, ", ".join(names),
                TRUST_FLAG)
    return torch.load(path, map_location=map_location, weights_only=False)


def load_model(path, device, *, trust: bool = False,
               flag: str = "--checkpoint") -> PtychoPINN_Lightning:
    """The trained Lightning module of a study's ``model.ckpt`` (eval mode, on ``device``),
    loaded weights only (see :func:`load_checkpoint` for ``trust``), or a one-line refusal
    (:class:`~ptycho.config.validation.StudyError`) naming the file and ``flag``."""
    p = Path(path)
    if not p.is_file():
        raise StudyError(f"checkpoint '{p}': file does not exist (expected a study's "
                         f"runs/<model_id>/model.ckpt) [flag {flag}]")
    try:
        try:
            model = PtychoPINN_Lightning.load_from_checkpoint(str(p), map_location=device,
                                                              weights_only=True)
        except pickle.UnpicklingError as err:
            names = _untrusted(p, err, trust, flag)
            log.warning("%s: loading its Python objects (%s) because of %s", p,
                        ", ".join(names), TRUST_FLAG)
            model = PtychoPINN_Lightning.load_from_checkpoint(str(p), map_location=device,
                                                              weights_only=False)
    except UntrustedCheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure is one refusal line
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        raise StudyError(f"checkpoint '{p}': cannot load ({reason}) (expected a model.ckpt "
                         f"written by this project) [flag {flag}]") from None
    return model.eval()


def _untrusted(path, err: pickle.UnpicklingError, trust: bool, flag: str | None) -> list[str]:
    """The refused globals of a weights-only failure when ``trust`` (to log them); else
    :class:`UntrustedCheckpointError`. Re-raises ``err`` when it is no weights-only
    refusal."""
    names = refused_globals(path, err)
    if names is None:
        raise err
    if not trust:
        raise UntrustedCheckpointError(path, names, flag) from None
    return names
