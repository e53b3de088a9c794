"""The base of every config section: ``to_dict`` / ``from_dict`` (unknown keys refused with
the closest names) and the check of each field declared with ``choices``.

``to_dict`` gives built-in values only (:func:`plain`): a NumPy scalar that passed a
field's check (``np.float64`` is a ``float``) is written as the Python number, so the dict
is valid JSON and a model checkpoint that stores it loads with
``torch.load(weights_only=True)`` (``ptycho_torch.model.checkpoint``)."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import field, fields
from typing import Any, ClassVar, Mapping

import numpy as np

from ptycho.config.validation import check_choice, unknown_key_error

_PLAIN = (bool, int, float, str)


def described(default, help: str, **meta):
    """A dataclass field with its help text (``metadata["help"]``, the CLI's) and optional
    ``choices``."""
    return field(default=default, metadata={"help": help, **meta})


def field_names(cls) -> tuple[str, ...]:
    """Names of a dataclass's fields, in declaration order."""
    return tuple(f.name for f in fields(cls))


def plain(value):
    """``value`` built from ``dict``, ``list``, ``tuple``, ``str``, ``int``, ``float``,
    ``bool`` and ``None`` only: NumPy scalars and arrays become Python numbers and lists,
    subclasses of the built-in types their base type, paths strings. Raises TypeError
    naming the type of anything else."""
    if value is None or type(value) in _PLAIN:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [plain(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    for base in _PLAIN:  # bool first: it is an int
        if isinstance(value, base):
            return base(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"a {type(value).__name__} is not a plain value (allowed: dict, list, "
                    "tuple, str, int, float, bool, None)")


# keywords only TensorFlow PtychoPINN's ``ptycho.config.config`` classes take: Ptychodus'
# "PtychoPINN" back end finds this package under the same name and passes them
_TENSORFLOW_PTYCHOPINN = ("model_type", "pad_object", "gaussian_smoothing_sigma", "nepochs",
                          "model_path", "train_data_file", "mae_weight", "nll_weight")


class Record:
    """``to_dict`` / ``from_dict`` for the config dataclasses (unknown keys refused).

    Constructed with a keyword of TensorFlow PtychoPINN's config classes (Ptychodus'
    "PtychoPINN" back end does that, because this package is also named ``ptycho``), it
    raises one TypeError line that names the back end to choose instead."""

    # every subclass is a dataclass (what dataclasses.fields / asdict need)
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def __new__(cls, *args, **kwargs):
        foreign = [k for k in _TENSORFLOW_PTYCHOPINN if k in kwargs]
        if foreign:
            raise TypeError(f"ptycho.config.config.{cls.__name__}({foreign[0]}=...) is a "
                            "TensorFlow PtychoPINN call, but this 'ptycho' is "
                            "ptychopinn-torch's (in Ptychodus choose the "
                            "ptychopinn-torch_unsupervised algorithm)")
        return super().__new__(cls)

    def to_dict(self) -> dict:
        return plain(dataclasses.asdict(self))

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
