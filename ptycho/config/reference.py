"""The command-line reference (``docs/reference/flags.md``), rendered from the parsers the
entry points build. Standard library only (no torch).

A flag generated from a config field (:func:`ptycho.config.cli.build_parser`) is rendered
from that field: its type and choices as its argparse action parses them, the field's
default and help text, and each named value column (the presets) beside the default. A
command's own flags (``--seeds``, ``--architectures``, a script's arguments) are rendered as
argparse declares them. ``scripts/docs/flag_reference.py`` lists the commands, writes the
file and, with ``--check``, says when the file is not current.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field, fields

from ptycho.config.cli import flag

_DASH = "-"


@dataclass(frozen=True, eq=False)
class Command:
    """One entry point.

    ``sections`` maps a section name to the config dataclass its generated flags come from;
    ``columns`` maps a column title to ``{field: value}`` shown beside the defaults (the
    presets); ``shared`` names an earlier command whose config tables this one shares (it
    then lists only the flags it leaves out); ``fixed`` holds values the command itself
    sets where they differ from the defaults (``fixed_title`` heads their column).
    """

    name: str
    runs: tuple[str, ...]
    parser: argparse.ArgumentParser
    sections: dict = field(default_factory=dict)
    columns: dict = field(default_factory=dict)
    shared: "Command | None" = None
    fixed: dict = field(default_factory=dict)
    fixed_title: str = ""


def anchor(title: str) -> str:
    """GitHub's anchor of a markdown heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def cell(text) -> str:
    """``text`` in one table cell (argparse's ``%%`` read as ``%``)."""
    return str(text).replace("%%", "%").replace("|", "\\|").replace("\n", " ")


def value(v) -> str:
    """A default or preset value as a code span (floats in their shortest exact form)."""
    if v is None:
        return "none"
    if isinstance(v, float) and float(f"{v:g}") == v:
        return "`" + re.sub(r"e([+-])0*(\d)", lambda m: "e" + m[1].strip("+") + m[2], f"{v:g}") + "`"
    if isinstance(v, str) and not v:
        return "`''`"
    return f"`{v}`"


def kind(action: argparse.Action) -> str:
    """What a flag takes: on/off, a switch, its choices or its type."""
    if isinstance(action, argparse.BooleanOptionalAction):
        return "on / off"
    if action.nargs == 0:
        return "switch"
    if action.choices is not None:
        return ", ".join(f"`{c}`" for c in action.choices)
    name = getattr(action.type, "__name__", "str") if action.type is not None else "str"
    return f"one or more {name}" if action.nargs in ("+", "*") else name


def flag_name(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}` (positional)"
    return " / ".join(f"`{o}`" for o in action.option_strings)


def actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def config_dests(command: Command) -> set[str]:
    """The dests of ``command``'s flags that come from its config sections."""
    names = {f.name for cls in command.sections.values() for f in fields(cls)}
    return {a.dest for a in actions(command.parser) if a.dest in names}


def own_actions(command: Command) -> list[argparse.Action]:
    """The flags ``command`` declares itself (those it shares with ``command.shared`` left
    out)."""
    config = config_dests(command)
    shared = {a.dest for a in actions(command.shared.parser)} if command.shared else set()
    return [a for a in actions(command.parser) if a.dest not in config | shared]


def own_table(command: Command) -> list[str]:
    own = own_actions(command)
    if not own:
        return []
    rows = ["| flag | takes | default | help |", "|---|---|---|---|"]
    for a in own:
        if a.required:
            default = "required"
        elif a.default in (None, argparse.SUPPRESS):
            default = _DASH
        else:
            default = value(a.default)
        rows.append(f"| {flag_name(a)} | {cell(kind(a))} | {cell(default)} | {cell(a.help or '')} |")
    for group in command.parser._mutually_exclusive_groups:
        names = ", ".join(f"`{a.option_strings[0]}`" for a in group._group_actions)
        rows += ["", f"{'Exactly' if group.required else 'At most'} one of {names}."]
    return [f"Its own flags{' (besides the shared ones)' if command.shared else ''}:", "", *rows, ""]


def section_table(command: Command, section: str, cls) -> list[str]:
    by_dest = {a.dest: a for a in actions(command.parser)}
    titles = list(command.columns)
    head = ["flag", "takes", "default", *titles, "help"]
    rows = [f"### `{section}` ({cls.__name__})", "", "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head)]
    for f in fields(cls):
        if f.name not in by_dest:
            continue
        a = by_dest[f.name]
        extra = [value(v[f.name]) if f.name in v else "" for v in command.columns.values()]
        rows.append("| " + " | ".join([flag_name(a), cell(kind(a)), value(f.default), *extra,
                                       cell(f.metadata["help"])]) + " |")
    return [*rows, ""]


def shared_note(command: Command) -> list[str]:
    shared = command.shared
    if shared is None:
        raise ValueError(f"command {command.name!r} shares no other command's flags")
    left_out = sorted(config_dests(shared) - config_dests(command))
    left_out += sorted(a.dest for a in own_actions(shared)
                       if a.dest not in {b.dest for b in actions(command.parser)})
    note = f"Every config flag of [`{shared.name}`](#{anchor(shared.name)})"
    if left_out:
        note += ", except " + ", ".join(f"`{flag(d)}`" for d in left_out)
    return [note + ".", ""]


def fixed_table(command: Command) -> list[str]:
    if not command.fixed:
        return []
    defaults = {f.name: f.default for cls in command.sections.values() for f in fields(cls)}
    rows = [f"| flag | default | {command.fixed_title} |", "|---|---|---|"]
    rows += [f"| `{flag(k)}` | {value(defaults[k])} | {value(v)} |"
             for k, v in command.fixed.items() if defaults.get(k) != v]
    return [f"What it sets where that differs from the defaults ({command.fixed_title}; "
            "its flags override these):", "", *rows, ""]


def render_command(command: Command) -> list[str]:
    lines = [f"## {command.name}", "", "Run as " + ", ".join(f"`{r}`" for r in command.runs) + ".", ""]
    if command.parser.description:
        lines += [cell(command.parser.description), ""]
    lines += own_table(command)
    if command.shared is not None:
        lines += shared_note(command)
    else:
        for section, cls in command.sections.items():
            lines += section_table(command, section, cls)
    return lines + fixed_table(command)


def render(commands: list[Command], intro: list[str]) -> str:
    """The whole reference: ``intro`` lines, a contents list, then one section per command."""
    lines = ["# Command-line flags", "", *intro, ""]
    lines += [f"- [{c.name}](#{anchor(c.name)})" for c in commands] + [""]
    for c in commands:
        lines += render_command(c)
    return "\n".join(lines).rstrip("\n") + "\n"
