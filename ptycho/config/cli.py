"""Command lines generated from the config dataclasses, and their one-line refusals.

Every leaf field of :class:`~ptycho.config.study_config.StudyConfig` becomes ``--field-name``
(booleans get ``--x/--no-x``, enumerations their ``choices``); defaults are left out of
the parsed namespace so presets and ``--config PATH`` can apply underneath explicit flags.
Flags must be spelled out (no abbreviations). ``--help`` lists them in one group per
concern (:data:`HELP_GROUPS`: data, simulation, model, probe, training, inference, refine,
output and run), and with ``--preset P`` on the command line it shows P's value beside each
default that P changes (``default: 50; quick: 7``). Every refusal is a :class:`StudyError`
with one line; :func:`flag_hint` names the flag of a refused config field from the error's
``field`` (never from its text). A study's own options (a dataclass of
:mod:`ptycho.config.options`) get their flags from :func:`add_options`, one group per study.
"""
from __future__ import annotations

import argparse
import difflib
import json
import sys
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path

from ptycho.config.presets import PRESET_VALUES, from_preset
from ptycho.config.study_config import SECTIONS, StudyConfig, flat_owner
from ptycho.config.validation import ConfigError, StudyError


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# --help groups: (key, title); a field's group is its section's, but for GROUP_OF_FIELD
HELP_GROUPS = (
    ("start", "starting values (explicit flags win over both)"),
    ("data", "data: the input files"),
    ("simulation", "simulated grid-lines data (used without --train-npz)"),
    ("model", "model: the network"),
    ("probe", "probe and positions"),
    ("training", "training"),
    ("inference", "inference and stitching"),
    ("refine", "refinement after the network (Pty-chi)"),
    ("run", "output and run"),
)
_SECTION_GROUP = {"reconstruct": "run"}
#: the help group titles of the sections that are a command's own (not a study's)
SECTION_TITLES = {"live": "live: the scan followed and what is written",
                  "live_sim": "the simulated detector"}
GROUP_OF_FIELD = {name: "data" for name in (
    "train_npz", "test_npz", "data_unit", "cxi_translation_sign", "probe_npz",
    "probe_scale_mode", "probe_smoothing_sigma", "cache_dir", "checkpoint", "data",
    "probe_source")} | {"refine": "refine", "refine_epochs": "refine", "preset": "start"}
_PRESET_EPILOG = ("--preset NAME --help shows NAME's value beside each default it changes "
                  "(e.g. --preset quick --help).")


def preset_in(argv) -> str | None:
    """The known preset named by ``--preset P`` / ``--preset=P`` in ``argv`` (the last one),
    or None."""
    argv, found = list(argv), None
    for i, tok in enumerate(argv):
        if tok == "--preset" and i + 1 < len(argv):
            found = argv[i + 1]
        elif str(tok).startswith("--preset="):
            found = tok.split("=", 1)[1]
    return found if found in PRESET_VALUES else None


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`StudyError` (one line) instead of printing usage, and
    shows the values of a ``--preset`` given on the command line in its help."""

    def error(self, message: str):  # argparse hook
        raise StudyError(f"{message.splitlines()[0]} (run with --help to list the flags)")

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        preset = preset_in(args)
        for action in self._actions:
            default = getattr(action, "field_default", None)
            if default is None:
                continue
            note = default
            if preset is not None and action.dest in PRESET_VALUES[preset]:
                note += f"; {preset}: {PRESET_VALUES[preset][action.dest]!r}"
            action.help = f"{action.field_help} ({note})"
        return super().parse_known_args(args, namespace)


def build_parser(prog: str, description: str, exclude: tuple[str, ...] = (), *,
                 sections: dict | None = None, config_flag: bool = True) -> argparse.ArgumentParser:
    """One flag per leaf field of ``sections`` (default: the StudyConfig sections) minus
    ``exclude``, in one help group per concern (:data:`HELP_GROUPS`), plus ``--config PATH``
    for studies."""
    sections = sections or SECTIONS
    has_preset = any(f.name == "preset" and f.name not in exclude
                     for cls in sections.values() for f in fields(cls))
    p = _Parser(prog=prog, description=description, allow_abbrev=False,
                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                usage="%(prog)s [-h] [--FLAG VALUE ...]",
                epilog=_PRESET_EPILOG if has_preset else None)
    groups = {key: p.add_argument_group(title) for key, title in HELP_GROUPS}
    if config_flag:
        groups["start"].add_argument(
            "--config", dest="config", default=argparse.SUPPRESS, metavar="PATH",
            help="start from the config.json a study wrote (its 'study' section); explicit "
                 "flags win")
    for section, cls in sections.items():
        key = _SECTION_GROUP.get(section, section)
        if key not in groups:   # a command's own section (live, live_sim): a group of its own
            groups[key] = p.add_argument_group(SECTION_TITLES.get(section, section))
        _add_fields(groups, section, cls, exclude)
    for group in groups.values():   # no empty heading in --help
        if not group._group_actions:
            p._action_groups.remove(group)
    return p


def _add_fields(groups: dict, section: str, cls, exclude) -> None:
    types = typing.get_type_hints(cls)  # real types, with or without postponed annotations
    for f in fields(cls):
        if f.name in exclude:
            continue
        group = GROUP_OF_FIELD.get(f.name, _SECTION_GROUP.get(section, section))
        kw: dict[str, typing.Any] = dict(dest=f.name, default=argparse.SUPPRESS,
                                         help=f"{f.metadata['help']} (default: {f.default!r})")
        kind = _value_type(types[f.name])
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = kind
            if "choices" in f.metadata:
                kw["choices"] = f.metadata["choices"]
            else:
                kw["metavar"] = f.name.upper()
        action = groups[group].add_argument(flag(f.name), **kw)
        action.field_help, action.field_default = f.metadata["help"], f"default: {f.default!r}"


def add_options(parser: argparse.ArgumentParser, cls, title: str | None = None):
    """The flags of the study options dataclass ``cls`` (:mod:`ptycho.config.options`) as one
    argparse group titled ``title`` (default ``cls.title``): per field, ``--field-name`` (or
    metadata ``flag``), its help, choices, metavar and nargs; a ``parse`` field takes text
    (parsed by the options), a bool a switch (``switch``) or ``--x/--no-x``, a number its
    type. The default is the field's (None: left out of the parsed values). Returns the group."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(title or cls.title)
    exclusive: dict = {}
    for f in fields(cls):
        meta = f.metadata
        kw = {k: meta[k] for k in ("help", "choices", "metavar", "nargs") if k in meta}
        if f.default is not MISSING:
            kw["default"] = argparse.SUPPRESS if f.default is None else f.default
        if "parse" not in meta and "nargs" not in meta:
            kind = _value_type(hints[f.name])
            if kind is bool:
                kw["action"] = "store_true" if meta.get("switch") else argparse.BooleanOptionalAction
            elif kind is not str:
                kw["type"] = kind
        if meta.get("positional"):
            group.add_argument(f.name, **kw)
            continue
        target = group
        if "exclusive" in meta:
            if meta["exclusive"] not in exclusive:
                exclusive[meta["exclusive"]] = group.add_mutually_exclusive_group(
                    required=bool(meta.get("required")))
            target = exclusive[meta["exclusive"]]
        elif meta.get("required"):
            kw["required"] = True
        target.add_argument(flag(meta.get("flag", f.name)), dest=f.name, **kw)
    return group


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
