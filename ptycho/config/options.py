"""A study's own options: one frozen dataclass per study, validated when constructed.

Each field is declared with :func:`ptycho.config.record.described`: its help text and, as
needed, ``choices``, ``flag`` (the flag's name where it is not ``--field-name``),
``metavar``, ``parse`` (command-line text -> the value, refusing in one line),
``positional``, ``nargs``, ``switch`` (a bool flag with no ``--no-`` form), ``required`` and
``exclusive`` (the name of a mutually exclusive group; ``required`` on its members makes one
of them required). :func:`ptycho.config.cli.add_options` generates the flags of such a
class as one argparse group titled by its :attr:`StudyOptions.title`; a default of None
leaves the flag out of the parsed values.

A field with ``parse`` holds the parsed value: the text of the command line or of the
default is parsed when the options are constructed, and a parsed value given again (a
tuple, e.g. through ``dataclasses.replace``) is parsed from its comma-joined text, so the
same one-line refusals apply either way. A subclass's ``__post_init__`` calls this one
first, then checks the rest of its fields.
"""
from __future__ import annotations

import dataclasses
from dataclasses import fields
from typing import Any, ClassVar


class StudyOptions:
    """The base of a study's options dataclass (see the module docstring)."""

    title: ClassVar[str] = "options"
    # every subclass is a dataclass (said here for the type checker, as in config.record)
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def __post_init__(self):
        for f in fields(self):
            parse, value = f.metadata.get("parse"), getattr(self, f.name)
            if parse is None or value is None:
                continue
            text = value if isinstance(value, str) else ",".join(str(v) for v in value)
            object.__setattr__(self, f.name, parse(text))

    @classmethod
    def from_values(cls, values: dict):
        """The options given among parsed flag ``values`` (taken out of it), validated."""
        return cls(**{f.name: values.pop(f.name) for f in fields(cls) if f.name in values})
