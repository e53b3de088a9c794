"""``TorchRunnerConfig``: the study config as one flat dataclass, the runner's own contract.

The runner's users build it with flat keywords and read fields back as attributes::

    cfg = TorchRunnerConfig(train_npz="scan.npz", architecture="fno", infer_batch_size=64)
    cfg.infer_batch_size          # 64
    cfg.to_study().inference      # the same values as the nested StudyConfig

The class is *generated* from the leaf fields of :class:`~ptycho.config.study_config.StudyConfig`'s
five sections: each field keeps the section's own default, type and help text (the
``dataclasses.Field`` is rebuilt from the section's, never retyped), so every default is
declared once, in ``ptycho.config.config``. Construction validates through
``StudyConfig`` (every range and cross-field rule) and refuses an unknown keyword by name
with the closest field names. As on the command line, ``preset=`` applies that preset's
values under the keywords given explicitly; :meth:`from_study` gives every field
explicitly, so ``TorchRunnerConfig.from_study(s).to_study() == s`` for every ``s``.
"""
from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any

from ptycho.config.presets import from_preset
from ptycho.config.study_config import SECTIONS, StudyConfig, leaf_fields
from ptycho.config.validation import unknown_key_error


def _flat_fields() -> list[tuple[str, Any, dataclasses.Field]]:
    """``(name, type, field)`` of every StudyConfig leaf, with the section's default."""
    hints = {section: typing.get_type_hints(cls) for section, cls in SECTIONS.items()}
    return [(f.name, hints[section][f.name],
             dataclasses.field(default=f.default,
                               metadata={**f.metadata, "section": section}))
            for section, f in leaf_fields()]


if typing.TYPE_CHECKING:  # the generated subclass is a dataclass (what dataclasses.fields needs)
    from _typeshed import DataclassInstance as _Dataclass
else:
    _Dataclass = object


class _FlatStudy(_Dataclass):
    """Methods of the generated flat class (see the module docstring)."""

    def __post_init__(self) -> None:
        self.to_study()  # every range and cross-field rule of the nested family

    def to_study(self) -> StudyConfig:
        """The nested, validated :class:`StudyConfig` with these values."""
        return StudyConfig.from_flat(self.flat())

    @classmethod
    def from_study(cls, study: StudyConfig):
        """The flat view of ``study`` (every field given explicitly)."""
        if not isinstance(study, StudyConfig):
            raise TypeError(f"TorchRunnerConfig.from_study needs a StudyConfig, got "
                            f"{type(study).__name__}")
        return cls(**study.flat())

    def flat(self) -> dict[str, Any]:
        """``{field: value}`` in the sections' declaration order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **values):
        """A copy with flat ``values`` changed (validated; unknown keys refused)."""
        return type(self)(**{**self.flat(), **values})

    # the nested sections and the StudyConfig properties, read through the nested form,
    # so code written for a StudyConfig takes a TorchRunnerConfig unchanged
    @property
    def model(self):
        return self.to_study().model

    @property
    def training(self):
        return self.to_study().training

    @property
    def inference(self):
        return self.to_study().inference

    @property
    def simulation(self):
        return self.to_study().simulation

    @property
    def run(self):
        return self.to_study().run

    @property
    def model_id(self) -> str:
        return self.to_study().model_id


TorchRunnerConfig = typing.cast("type[_FlatStudy]", dataclasses.make_dataclass(
    "TorchRunnerConfig", _flat_fields(), bases=(_FlatStudy,), frozen=True, kw_only=True,
    namespace={"__module__": __name__}))  # make_dataclass is typed to return a bare type
TorchRunnerConfig.__doc__ = ("The study config as flat keyword fields (one per StudyConfig "
                             "leaf; defaults, types and help from the sections).")
_generated_init = TorchRunnerConfig.__init__
_NAMES = frozenset(f.name for f in dataclasses.fields(TorchRunnerConfig))


def _init(self, **values) -> None:
    """Unknown keywords refused by name; ``preset`` applied under the explicit keywords."""
    for key in values:
        if key not in _NAMES:
            raise unknown_key_error("TorchRunnerConfig field", str(key), _NAMES)
    explicit = {k: v for k, v in values.items() if k != "preset"}
    _generated_init(self, **from_preset(values.get("preset", "none"), **explicit).flat())


# wraps the generated __init__ on purpose (keeps the field signature)
TorchRunnerConfig.__init__ = functools.wraps(_generated_init)(_init)  # type: ignore[method-assign]


def as_study_config(cfg) -> StudyConfig:
    """A :class:`StudyConfig` from a StudyConfig or a TorchRunnerConfig (else TypeError)."""
    if isinstance(cfg, StudyConfig):
        return cfg
    if isinstance(cfg, TorchRunnerConfig):
        return cfg.to_study()
    raise TypeError(f"expected a StudyConfig or a TorchRunnerConfig, got {type(cfg).__name__}")
