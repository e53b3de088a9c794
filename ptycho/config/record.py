"""The base of every config section: ``to_dict`` / ``from_dict`` (unknown keys refused with
the closest names) and the check of each field declared with ``choices``."""
from __future__ import annotations

import dataclasses
from dataclasses import field, fields
from typing import Mapping

from ptycho.config.validation import check_choice, unknown_key_error


def described(default, help: str, **meta):
    """A dataclass field with its help text (``metadata["help"]``, the CLI's) and optional
    ``choices``."""
    return field(default=default, metadata={"help": help, **meta})


def field_names(cls) -> tuple[str, ...]:
    """Names of a dataclass's fields, in declaration order."""
    return tuple(f.name for f in fields(cls))


class Record:
    """``to_dict`` / ``from_dict`` for the config dataclasses (unknown keys refused)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping):
        if isinstance(data, cls):
            return data
        valid = field_names(cls)
        for key in data:
            if key not in valid:
                raise unknown_key_error(f"{cls.__name__} key", str(key), valid)
        return cls(**data)

    def _check_choices(self) -> None:
        for f in fields(self):
            if "choices" in f.metadata:
                check_choice(type(self).__name__, f.name, getattr(self, f.name),
                             f.metadata["choices"])
