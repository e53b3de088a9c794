"""PyTorch-side configuration dataclasses.

Built from the canonical configs by :mod:`ptycho_torch.config_factory`; they carry exactly
what the generator, the Lightning module and the trainer need. All are frozen, validated
on construction, and round-trip through plain dicts (``to_dict`` / ``from_dict``) so they
can be stored as Lightning hyperparameters.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ptycho.config import config as canonical
from ptycho.config.config import SUPPORTED_GRIDSIZE, SUPPORTED_N
from ptycho.config.validation import check_choice, check_float, unknown_key_error


class _DictMixin:
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        """Build from a dict, refusing unknown keys (never drops a key silently)."""
        if isinstance(data, cls):
            return data
        valid = {f.name for f in fields(cls)}
        for key in data:
            if key not in valid:
                raise unknown_key_error(f"{cls.__name__} key", key, valid)
        return cls(**data)


@dataclass(frozen=True)
class ModelConfig(canonical.ModelConfig, _DictMixin):
    """What the generator is: the canonical fields and rules (see ``ptycho.config.ModelConfig``)."""


@dataclass(frozen=True)
class DataConfig(_DictMixin):
    """Shape of the data and how the network input is normalised.

    ``input_scale``: dataset-wide constant multiplying the diffraction amplitudes before they
    enter the generator (the default ``input_scale_factor`` of ``forward_predict``); the
    physics always compares predictions with the unscaled amplitudes.
    ``photon_scale``: the simulation scale s (counts = (s*A)^2), used by the Poisson loss.
    """

    N: int = 64
    gridsize: int = 1
    nphotons: float = 1e9
    input_scale: float = 1.0
    photon_scale: float = 1.0
    val_fraction: float = 0.05

    def __post_init__(self) -> None:
        o = "DataConfig"
        check_choice(o, "N", self.N, SUPPORTED_N)
        check_choice(o, "gridsize", self.gridsize, SUPPORTED_GRIDSIZE)
        check_float(o, "nphotons", self.nphotons, 0.0, None, lo_open=True)
        check_float(o, "input_scale", self.input_scale, 0.0, None, lo_open=True)
        check_float(o, "photon_scale", self.photon_scale, 0.0, None, lo_open=True)
        check_float(o, "val_fraction", self.val_fraction, 0.0, 0.5, lo_open=True)

    @property
    def channels(self) -> int:
        return self.gridsize * self.gridsize


@dataclass(frozen=True)
class TrainingConfig(canonical.TrainingConfig, _DictMixin):
    """Optimiser, loss, schedule, seed and devices for Lightning (canonical fields and rules)."""
