"""One study's configuration: the five user-facing sections nested in :class:`StudyConfig`,
validated together (the checks that need two sections), and its flat view (one key, and one
CLI flag, per leaf field; the names are unique across the sections, checked at import).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

from ptycho.config.config import (
    InferenceConfig,
    ModelConfig,
    RunConfig,
    SimulationConfig,
    TrainingConfig,
)
from ptycho.config.probe_config import ProbeConfig
from ptycho.config.record import Record, field_names
from ptycho.config.validation import ConfigError, refuse, unknown_key_error
from ptycho.geometry.raster import n_groups, stride_rule
from ptycho.geometry.grouping import MAX_K_NEAREST

SECTIONS: dict[str, type[Record]] = {
    "model": ModelConfig, "training": TrainingConfig, "inference": InferenceConfig,
    "simulation": SimulationConfig, "run": RunConfig, "probe": ProbeConfig}


@dataclass(frozen=True)
class StudyConfig:
    """Every knob of one study: six nested configs, validated together on construction.

    The flat view (:meth:`flat`, :meth:`from_flat`) has one key per leaf field; the CLI
    has one ``--flag-name`` per key.
    """

    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    inference: InferenceConfig = InferenceConfig()
    simulation: SimulationConfig = SimulationConfig()
    run: RunConfig = RunConfig()
    probe: ProbeConfig = ProbeConfig()

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"StudyConfig.{name} must be a {cls.__name__}", "StudyConfig",
                                  name)
        m, s, i = self.model, self.simulation, self.inference
        if i.stitch_crop > m.N:
            raise refuse("InferenceConfig", "stitch_crop", f"={i.stitch_crop} exceeds N={m.N} "
                         f"(allowed: 0..{m.N})")
        if i.stitch == "tiles" and m.gridsize != 1:
            raise refuse("InferenceConfig", "stitch", "='tiles' needs gridsize 1 (allowed at "
                         f"gridsize {m.gridsize}: 'positions')")
        self._check_probe_route()
        self._check_grouping()
        if self.run.train_npz is None:  # simulated data: geometry checks before simulating
            if s.test_stride > m.N:
                raise refuse("SimulationConfig", "test_stride", f"={s.test_stride} exceeds "
                             f"N={m.N} (allowed: 1..{m.N}; stitched tiles are test_stride wide)")
            if s.object_size < m.N:
                raise refuse("SimulationConfig", "object_size", f"={s.object_size} is smaller "
                             f"than N={m.N} (allowed: >= {m.N})")
            for name in ("train_stride", "test_stride"):  # the simulator's own raster rule
                why = stride_rule(s.object_size, m.N, getattr(s, name), m.gridsize)
                if why is not None:
                    raise refuse("GridLinesSpec", name, why)
            n = n_groups(s.object_size, m.N, s.train_stride, m.gridsize) * s.n_train_objects
            if n < 2:
                raise refuse("SimulationConfig", "train_stride", f"={s.train_stride} gives {n} "
                             f"training pattern(s) for object_size={s.object_size}, N={m.N}, "
                             f"n_train_objects={s.n_train_objects} (allowed: settings giving >= 2 "
                             "patterns, one for validation)")

    def _check_grouping(self) -> None:
        """The training groups' draw (``k_nearest``, ``groups_per_position``): gridsize 2
        and a training scan file only, and enough distinct groups per position."""
        t, g = self.training, self.model.gridsize
        for name, default in (("k_nearest", 0), ("groups_per_position", 1)):
            value = getattr(t, name)
            if value != default and g == 1:
                raise refuse("TrainingConfig", name, f"={value} has no effect at gridsize 1 "
                             f"(it draws the neighbour groups of gridsize 2; allowed at "
                             f"gridsize 1: {default})")
            if value != default and self.simulated:
                raise refuse("TrainingConfig", name, f"={value} needs a training scan file "
                             f"(--train-npz); the simulated scans are grouped on their grid "
                             f"(allowed without --train-npz: {default})")
        C = g * g
        if t.k_nearest and t.k_nearest < C - 1:
            raise refuse("TrainingConfig", "k_nearest", f"={t.k_nearest} is fewer than the "
                         f"C-1 = {C - 1} neighbours of a group at gridsize {g} (allowed: 0 or "
                         f"{C - 1}..{MAX_K_NEAREST})")
        k = t.k_nearest or C - 1
        n_distinct = math.comb(k, C - 1)
        if t.groups_per_position > n_distinct:
            raise refuse("TrainingConfig", "groups_per_position", f"={t.groups_per_position} "
                         f"exceeds the {n_distinct} distinct group(s) per position of "
                         f"k_nearest={t.k_nearest} at gridsize {g} (allowed: 1..{n_distinct}, "
                         "or raise k_nearest)")

    def _check_probe_route(self) -> None:
        p, epochs = self.probe, self.training.refine_probe_epochs
        if p.probe_update == "learn" and epochs:
            raise refuse("ProbeConfig", "probe_update", f"='learn' with refine_probe_epochs="
                         f"{epochs}: the LSQML epochs belong to the lsqml route (allowed: "
                         "probe_update 'lsqml' or 'auto', or refine_probe_epochs 0)")
        if p.refine_positions is True and (p.probe_update == "learn"
                                   or (p.probe_update == "none" and not epochs)):
            raise refuse("ProbeConfig", "refine_positions", " needs the lsqml route (allowed "
                         "with probe_update 'lsqml' or 'auto', or refine_probe_epochs > 0; "
                         f"here probe_update={p.probe_update!r})")

    @property
    def model_id(self) -> str:
        return f"pinn_{self.model.architecture}"

    @property
    def simulated(self) -> bool:
        return self.run.train_npz is None

    # ---------------------------------------------------------------- flat view
    def flat(self) -> dict[str, Any]:
        """``{field: value}`` over every section (names are unique)."""
        return {k: v for name in SECTIONS for k, v in getattr(self, name).to_dict().items()}

    def to_dict(self) -> dict:
        return {name: getattr(self, name).to_dict() for name in SECTIONS}

    @classmethod
    def from_dict(cls, data: Mapping) -> StudyConfig:
        """From the nested form (``to_dict``); unknown sections or keys are refused."""
        for key in data:
            if key not in SECTIONS:
                raise unknown_key_error("StudyConfig section", str(key), SECTIONS)
        return cls(**{name: SECTIONS[name].from_dict(data.get(name, {})) for name in SECTIONS})

    @classmethod
    def from_flat(cls, values: Mapping[str, Any], base: StudyConfig | None = None) -> StudyConfig:
        """``base`` (default: all defaults) with flat ``values`` on top; unknown keys refused."""
        base = base or cls()
        owner = flat_owner()
        per: dict[str, dict] = {name: {} for name in SECTIONS}
        for key, value in values.items():
            if key not in owner:
                raise unknown_key_error("config key", str(key), owner)
            per[owner[key]][key] = value
        return cls(**{name: dataclasses.replace(getattr(base, name), **per[name])
                      if per[name] else getattr(base, name) for name in SECTIONS})

    def replace(self, **values) -> StudyConfig:
        return StudyConfig.from_flat(values, base=self)


def flat_owner() -> dict[str, str]:
    """``{field name: section}`` for every leaf field of :class:`StudyConfig`."""
    owner: dict[str, str] = {}
    for name, cls in SECTIONS.items():
        for key in field_names(cls):
            if key in owner:
                raise RuntimeError(f"field {key!r} is in both {owner[key]} and {name}")
            owner[key] = name
    return owner


def leaf_fields() -> list[tuple[str, dataclasses.Field]]:
    """``(section, field)`` for every leaf field, in declaration order."""
    return [(name, f) for name, cls in SECTIONS.items() for f in fields(cls)]


# Settings that never change a study's numbers (a finished study is reused across them).
NO_EFFECT_ON_RESULT = frozenset({
    "overwrite", "resume", "progress_bar", "logger", "num_threads", "snapshot_every", "preset",
    "cache_dir", "output_dir", "trust_checkpoint"})
# Settings that may differ between an interrupted run and its --resume: the above, the
# budget, and where it runs (batch_size may change, e.g. after a training OOM).
RESUME_MAY_CHANGE = NO_EFFECT_ON_RESULT | frozenset({
    "epochs", "max_steps", "min_steps", "max_train_minutes", "early_stopping_patience", "infer_batch_size",
    "batch_size", "device", "devices", "num_nodes", "strategy", "deterministic", "stitch",
    "stitch_crop", "stitch_subpixel", "align_phase", "stitch_weighting"})


flat_owner()  # field names must stay unique across the sections (checked at import)
