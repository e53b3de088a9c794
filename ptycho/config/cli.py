"""Command lines generated from the config dataclasses, and their one-line refusals.

Every leaf field of :class:`~ptycho.config.study_config.StudyConfig` becomes ``--field-name``
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
import types
import typing
from dataclasses import fields
from pathlib import Path

from ptycho.config.presets import PRESET_VALUES, from_preset
from ptycho.config.study_config import SECTIONS, StudyConfig, flat_owner
from ptycho.config.validation import ConfigError, StudyError


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
    types = typing.get_type_hints(cls)  # real types, with or without postponed annotations
    for f in fields(cls):
        if f.name in exclude:
            continue
        default = f.default
        kw: dict[str, typing.Any] = dict(dest=f.name, default=argparse.SUPPRESS,
                  help=f"{f.metadata['help']} [{section}] (default: {default!r})")
        kind = _value_type(types[f.name])
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = kind
            if "choices" in f.metadata:
                kw["choices"] = f.metadata["choices"]
            else:
                kw["metavar"] = f.name.upper()
        p.add_argument(flag(f.name), **kw)


def _value_type(t) -> type:
    """The scalar type a flag parses: ``Optional[X]`` -> X; int, float, bool, str as is."""
    args = [a for a in typing.get_args(t) if a is not type(None)]
    if typing.get_origin(t) in (typing.Union, types.UnionType) and len(args) == 1:
        t = args[0]
    if t in (bool, int, float, str):
        return t
    raise TypeError(f"config field type {t!r} has no command-line form (allowed: bool, int, "
                    "float, str, Optional of these)")


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
    return StudyConfig.from_dict(_read_study_section(path))


def _read_study_section(path: str) -> dict:
    """The validated nested ``study`` section of ``path`` as written (possibly partial)."""
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
        StudyConfig.from_dict(data["study"])
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise StudyError(f"config '{p}': {str(err).splitlines()[0]} [flag --config]") from None
    if not all(isinstance(v, dict) for v in data["study"].values()):
        raise StudyError(f"config '{p}': key 'study' holds a non-section value (expected "
                         f"sections {', '.join(SECTIONS)}, each a mapping) [flag --config]")
    return data["study"]


def config_from_values(values: dict) -> StudyConfig:
    """Preset, then ``--config`` file, then explicit values (flat), validated.

    With both ``--preset`` and ``--config``, the preset applies under the file's values:
    allowed only where the file leaves each of the preset's fields unset or equal to the
    preset's value (a study's own config.json sets every field), else refused in one line,
    so a recorded preset is always a preset that was applied.
    """
    values = dict(values)
    preset = values.pop("preset", None)
    path = values.pop("config", None)
    if path is None:
        return from_preset(preset or "none", **values)
    from_file = {k: v for section in _read_study_section(path).values() for k, v in section.items()}
    if preset is None:
        preset = from_file.get("preset", "none")
    from_file.pop("preset", None)
    from_preset(preset)  # refuses an unknown preset name
    for key, value in PRESET_VALUES[preset].items():
        if key in from_file and from_file[key] != value:
            raise StudyError(f"--preset {preset} conflicts with --config '{path}': the file sets "
                             f"{key}={from_file[key]!r} where the preset sets {value!r} "
                             "(allowed: --config alone, or a file that leaves the preset's "
                             "fields unset or equal; explicit flags override both)")
    return from_preset(preset, **{**from_file, **values})


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
