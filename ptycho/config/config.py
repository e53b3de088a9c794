"""Canonical, framework-free configuration of a study.

Three frozen dataclasses, each validated when constructed:

* :class:`ModelConfig`      what network is built (architecture and hyperparameters),
* :class:`TrainingConfig`   how it is trained (data photons, optimizer, loss, seed, devices),
* :class:`InferenceConfig`  how the test scan is predicted.

Defaults follow the reference study (fno 12/32/4/2, N 64, gridsize 1, batch 16, lr 1e-3,
inference batch 128). Field names are unique across the three classes so a flat override
dictionary is unambiguous (see ``ptycho_torch.config_factory``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ptycho.config.validation import check_bool, check_choice, check_float, check_int

ARCHITECTURES = ("cnn", "fno", "hybrid")
OUTPUT_MODES = ("real_imag", "amp_phase")
INPUT_TRANSFORMS = ("none", "sqrt", "log1p")
LOSSES = ("mae", "poisson")
OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = ("plateau", "none")
DEVICES = ("auto", "cpu", "cuda")
STRATEGIES = ("auto", "ddp")
SUPPORTED_N = (16, 32, 64, 128, 256)
SUPPORTED_GRIDSIZE = (1, 2)


@dataclass(frozen=True)
class ModelConfig:
    """Generator architecture and hyperparameters.

    ``fno_modes``: Fourier modes kept per axis by each spectral layer (<= N//2).
    ``fno_width``: channel width of the spectral blocks (the hybrid's first level).
    ``fno_blocks``: number of spectral blocks (FNO) / encoder levels' blocks (hybrid).
    ``fno_cnn_blocks``: convolutional refiner blocks (FNO) / bottleneck res-blocks (hybrid).
    ``n_filters_scale``: width multiplier of the CNN baseline (base 16 filters).
    ``generator_output_mode``: how the two output channels per patch are read:
    ``real_imag`` or ``amp_phase`` (sigmoid amplitude, pi*tanh phase).
    ``input_transform``: fixed compression of the scaled amplitudes before the generator
    (``none``, ``sqrt`` or ``log1p``): it lifts the weak high-angle signal, which carries
    the fine detail, towards the bright centre of the pattern. The physics is unaffected.
    """

    N: int = 64
    gridsize: int = 1
    architecture: str = "hybrid"
    fno_modes: int = 12
    fno_width: int = 32
    fno_blocks: int = 4
    fno_cnn_blocks: int = 2
    n_filters_scale: int = 2
    generator_output_mode: str = "real_imag"
    input_transform: str = "none"
    overlap_constraint: bool = True

    def __post_init__(self) -> None:
        o = "ModelConfig"
        check_choice(o, "N", self.N, SUPPORTED_N)
        check_choice(o, "gridsize", self.gridsize, SUPPORTED_GRIDSIZE)
        check_choice(o, "architecture", self.architecture, ARCHITECTURES)
        check_int(o, "fno_modes", self.fno_modes, 1)
        if self.fno_modes > self.N // 2:
            raise ValueError(
                f"{o}.fno_modes={self.fno_modes} exceeds N//2={self.N // 2} for N={self.N} "
                f"(allowed: 1..{self.N // 2})")
        check_int(o, "fno_width", self.fno_width, 4, 512)
        check_int(o, "fno_blocks", self.fno_blocks, 1, 16)
        check_int(o, "fno_cnn_blocks", self.fno_cnn_blocks, 0, 16)
        check_int(o, "n_filters_scale", self.n_filters_scale, 1, 16)
        check_choice(o, "generator_output_mode", self.generator_output_mode, OUTPUT_MODES)
        check_choice(o, "input_transform", self.input_transform, INPUT_TRANSFORMS)
        check_bool(o, "overlap_constraint", self.overlap_constraint)

    @property
    def channels(self) -> int:
        """C = gridsize**2 patches per sample."""
        return self.gridsize * self.gridsize


@dataclass(frozen=True)
class TrainingConfig:
    """Training data photons and optimisation settings.

    ``val_fraction`` of the training patterns is held out (seeded) as the validation split
    that drives the LR scheduler and early stopping; the test scan is never used for it.
    ``early_stopping_patience`` 0 disables early stopping.
    """

    nphotons: float = 1e9
    batch_size: int = 16
    epochs: int = 50
    learning_rate: float = 1e-3
    loss: str = "mae"
    seed: int = 42
    optimizer: str = "adam"
    weight_decay: float = 0.0
    scheduler: str = "plateau"
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    min_lr: float = 1e-4
    val_fraction: float = 0.05
    early_stopping_patience: int = 0
    max_train_patterns: int = 0
    device: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    deterministic: bool = True

    def __post_init__(self) -> None:
        o = "TrainingConfig"
        check_float(o, "nphotons", self.nphotons, 0.0, None, lo_open=True)
        check_int(o, "batch_size", self.batch_size, 1, 65536)
        check_int(o, "epochs", self.epochs, 1, 100000)
        check_float(o, "learning_rate", self.learning_rate, 0.0, 1.0, lo_open=True)
        check_choice(o, "loss", self.loss, LOSSES)
        check_int(o, "seed", self.seed, 0, 2**32 - 1)
        check_choice(o, "optimizer", self.optimizer, OPTIMIZERS)
        check_float(o, "weight_decay", self.weight_decay, 0.0, 1.0)
        check_choice(o, "scheduler", self.scheduler, SCHEDULERS)
        check_float(o, "plateau_factor", self.plateau_factor, 0.0, 0.99, lo_open=True)
        check_int(o, "plateau_patience", self.plateau_patience, 0, 1000)
        check_float(o, "min_lr", self.min_lr, 0.0, 1.0)
        check_float(o, "val_fraction", self.val_fraction, 0.0, 0.5, lo_open=True)
        check_int(o, "early_stopping_patience", self.early_stopping_patience, 0, 100000)
        check_int(o, "max_train_patterns", self.max_train_patterns, 0)
        check_choice(o, "device", self.device, DEVICES)
        check_int(o, "devices", self.devices, 1, 1024)
        check_choice(o, "strategy", self.strategy, STRATEGIES)
        check_bool(o, "deterministic", self.deterministic)


@dataclass(frozen=True)
class InferenceConfig:
    """Prediction of the test scan: patches per batch moved to the device at a time."""

    infer_batch_size: int = 128

    def __post_init__(self) -> None:
        check_int("InferenceConfig", "infer_batch_size", self.infer_batch_size, 1, 1 << 20)


@dataclass(frozen=True)
class CanonicalConfig:
    """The three canonical configs of one study, as a bundle."""

    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    inference: InferenceConfig = InferenceConfig()

    def __post_init__(self) -> None:
        for name, cls in (("model", ModelConfig), ("training", TrainingConfig),
                          ("inference", InferenceConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"CanonicalConfig.{name} must be a {cls.__name__}")

    def to_dict(self) -> dict:
        return {"model": asdict(self.model), "training": asdict(self.training),
                "inference": asdict(self.inference)}


def field_names(cls) -> tuple[str, ...]:
    """Names of a dataclass's fields, in declaration order."""
    return tuple(f.name for f in fields(cls))


def _check_unique_field_names() -> None:
    seen: dict[str, str] = {}
    for cls in (ModelConfig, TrainingConfig, InferenceConfig):
        for name in field_names(cls):
            if name in seen:
                raise RuntimeError(f"field {name!r} is in both {seen[name]} and {cls.__name__}")
            seen[name] = cls.__name__


_check_unique_field_names()
