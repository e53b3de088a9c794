"""Small validators shared by every config dataclass.

Each raises :class:`ConfigError` (a ``ValueError``) with one line that names
``<Owner>.<field>``, the bad value and what is allowed, so a CLI can print it verbatim.
The error also carries ``owner`` and ``field``, so a CLI can name the flag without
reading the message text.
"""
from __future__ import annotations

import difflib
import math
from typing import Iterable


class ConfigError(ValueError):
    """A refused config value: one-line message plus the ``owner`` class and ``field`` name."""

    def __init__(self, message: str, owner: str = "", field: str = ""):
        super().__init__(message)
        self.owner = owner
        self.field = field


def _name(owner: str, field: str) -> str:
    return f"{owner}.{field}" if owner else field


def check_int(owner: str, field: str, value, lo: int | None = None, hi: int | None = None) -> None:
    """Require an integer (bool excluded) in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{_name(owner, field)}={value!r} must be an integer", owner, field)
    _check_range(owner, field, value, lo, hi)


def check_float(owner: str, field: str, value, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False) -> None:
    """Require a finite real number in ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{_name(owner, field)}={value!r} must be a finite number", owner, field)
    if lo_open and lo is not None:
        if value <= lo or (hi is not None and value > hi):
            hi_txt = f" and <= {_fmt(hi)}" if hi is not None else ""
            raise ConfigError(f"{_name(owner, field)}={value!r} is out of range "
                              f"(allowed: > {_fmt(lo)}{hi_txt})", owner, field)
        return
    _check_range(owner, field, value, lo, hi)


def _fmt(v) -> str:
    return str(v) if isinstance(v, int) else f"{v:g}"


def _check_range(owner, field, value, lo, hi) -> None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if hi is None:
            allowed = f">= {_fmt(lo)}"
        elif lo is None:
            allowed = f"<= {_fmt(hi)}"
        else:
            allowed = f"{_fmt(lo)}..{_fmt(hi)}"
        raise ConfigError(f"{_name(owner, field)}={value!r} is out of range (allowed: {allowed})",
                          owner, field)


def check_choice(owner: str, field: str, value, choices: Iterable) -> None:
    """Require ``value`` to be one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{_name(owner, field)}={value!r} is not allowed (choose one of: "
                          f"{allowed})", owner, field)


def check_bool(owner: str, field: str, value) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{_name(owner, field)}={value!r} must be true or false", owner, field)


def refuse(owner: str, field: str, message: str) -> ConfigError:
    """A cross-field refusal: ``<Owner>.<field>`` is prepended to ``message``."""
    return ConfigError(f"{_name(owner, field)}{message}", owner, field)


def unknown_key_error(kind: str, key: str, valid: Iterable[str]) -> ValueError:
    """Error for an unknown key, suggesting the closest valid names."""
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(f"unknown {kind} {key!r}{hint} (valid keys: {', '.join(valid)})")


class StudyError(ValueError):
    """Refused input: one line for the user, exit code 2, nothing written."""
