"""Command lines generated from the config dataclasses, and their one-line refusals.

Every leaf field of :class:`~ptycho.config.config.StudyConfig` becomes ``--field-name``
(booleans get ``--x/--no-x``, enumerations their ``choices``); defaults are left out of
the parsed namespace so presets and ``--config PATH`` can apply underneath explicit flags.
Flags must be spelled out (no abbreviations). Every refusal is a :class:`StudyError` with
one line; :func:`flag_hint` names the flag of a refused config field from the error's
``field`` (never from its text).
"""
from __future__ import annotations

import argparse
import difflib
import json
from pathlib import Path

from dataclasses import fields

from ptycho.config.config import SECTIONS, StudyConfig, flat_owner, from_preset
from ptycho.config.validation import ConfigError, StudyError

_CASTS = {"int": int, "float": float, "Optional[str]": str, "str": str}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`StudyError` (one line) instead of printing usage."""

    def error(self, message: str):  # argparse hook
        raise StudyError(f"{message.splitlines()[0]} (run with --help to list the flags)")


def build_parser(prog: str, description: str, exclude: tuple[str, ...] = (), *,
                 sections: dict | None = None, config_flag: bool = True) -> argparse.ArgumentParser:
    """One flag per leaf field of ``sections`` (default: the StudyConfig sections) minus
    ``exclude``, plus ``--config PATH`` for studies."""
    p = _Parser(prog=prog, description=description, allow_abbrev=False,
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    if config_flag:
        p.add_argument("--config", dest="config", default=argparse.SUPPRESS, metavar="PATH",
                       help="start from the config.json a study wrote (its 'study' section); "
                            "explicit flags win")
    for section, cls in (sections or SECTIONS).items():
        _add_fields(p, section, cls, exclude)
    return p


def _add_fields(p, section: str, cls, exclude) -> None:
    for f in fields(cls):
        if f.name in exclude:
            continue
        default = f.default
        kw = dict(dest=f.name, default=argparse.SUPPRESS,
                  help=f"{f.metadata['help']} [{section}] (default: {default!r})")
        if str(f.type) in ("bool", "<class 'bool'>"):
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = _CASTS.get(str(f.type), str)
            if "choices" in f.metadata:
                kw["choices"] = f.metadata["choices"]
            else:
                kw["metavar"] = f.name.upper()
        p.add_argument(flag(f.name), **kw)


def unknown_arguments(extra: list[str], parser: argparse.ArgumentParser) -> StudyError:
    """The refusal for arguments the parser does not know, with a did-you-mean."""
    flags = sorted(o for a in parser._actions for o in a.option_strings if o.startswith("--"))
    for tok in extra:
        if tok.startswith("-"):
            name = tok.split("=", 1)[0]
            close = difflib.get_close_matches(name, flags, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            return StudyError(f"unknown flag {name!r}{hint} (allowed: the flags listed by --help)")
    return StudyError(f"unexpected argument {extra[0]!r} (allowed: --flag VALUE pairs only; "
                      "see --help)")


def parse_known(parser: argparse.ArgumentParser, argv) -> dict:
    """Parse ``argv``; unknown arguments are refused. Returns only the flags given."""
    ns, extra = parser.parse_known_args(argv)
    if extra:
        raise unknown_arguments(extra, parser)
    return vars(ns)


def read_config_file(path: str) -> StudyConfig:
    """The study config saved in a run's ``config.json`` (section ``study``)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as err:
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
        raise StudyError(f"config '{p}': cannot read ({reason}) (expected the config.json "
                         "written by a study) [flag --config]") from None
    if not isinstance(data, dict) or not isinstance(data.get("study"), dict):
        raise StudyError(f"config '{p}': key 'study' is missing (expected the config.json "
                         "written by a study, with a 'study' section) [flag --config]")
    try:
        return StudyConfig.from_dict(data["study"])
    except ConfigError:
        raise
    except ValueError as err:
        raise StudyError(f"config '{p}': {str(err).splitlines()[0]} [flag --config]") from None


def config_from_values(values: dict) -> StudyConfig:
    """Preset, then ``--config`` file, then explicit values (flat), validated."""
    values = dict(values)
    preset = values.pop("preset", None)
    path = values.pop("config", None)
    if path is not None:
        base = read_config_file(path)
        if preset is not None:
            values["preset"] = preset
        return base.replace(**values) if values else base
    return from_preset(preset or "none", **values)


def config_from_argv(argv=None, prog: str = "grid_lines_torch_runner.py",
                     description: str = "Simulate or load a scan, train, reconstruct and score "
                                        "one ptychography study.") -> StudyConfig:
    """Parse CLI flags into a validated StudyConfig; raises ValueError (one line) when refused."""
    return config_from_values(parse_known(build_parser(prog, description), argv))


def flag_hint(err: BaseException) -> str:
    """The first line of ``err``, with ``[flag --x]`` appended when it names a config field."""
    message = str(err).splitlines()[0] if str(err) else type(err).__name__
    name = getattr(err, "field", "")
    if "[flag --" in message or not name or name not in flat_owner():
        return message
    return f"{message} [flag {flag(name)}]"
