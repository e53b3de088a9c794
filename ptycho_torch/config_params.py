"""The PyTorch side's config names as the monorepo's ``ptycho_torch`` spells them: the
classes Ptychodus 1.7 builds for its PtychoPINN-Torch back end.

Ptychodus constructs these five classes by keyword in its parent process
(``ptychodus/model/ptychopinn_torch/reconstructor.py``), pickles them into a spawned child
and hands them to :class:`ptycho_torch.api.base_api.ConfigManager`, which translates them
into the project's one config family (:mod:`ptycho.config.config`) and refuses, in one
line naming the Ptychodus setting, any value this project does not honour
(:mod:`ptycho_torch.api.translate`). So these classes are plain, mutable records
(Ptychodus assigns ``training_config.n_devices``), validated only by that translation.

Each field's default is the default of the Ptychodus setting it comes from; ``SETTINGS``
maps each keyword to that setting (``PtychoPINNTorch<Group>.<setting>``), which refusals
name. ``ModelConfig`` also carries the generator choice and the FNO hyperparameters of
the runner (``architecture``, ``fno_*``), which Ptychodus never sets.

The project's own configs (frozen, validated when constructed) are
:class:`ptycho.config.config.ModelConfig`, ``TrainingConfig``, ``DataConfig`` and
``InferenceConfig``; build them from flat overrides with
:func:`ptycho_torch.config_factory.create_training_payload`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Optional

__all__ = ["DataConfig", "DatagenConfig", "InferenceConfig", "ModelConfig", "SETTINGS",
           "TrainingConfig"]


class _Record:
    """``to_dict`` (plain values) and ``from_dict`` (unknown keys refused by name)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise TypeError(f"{cls.__name__}: unknown keys {', '.join(unknown)} (allowed: "
                            f"{', '.join(sorted(names))})")
        return cls(**values)


@dataclass
class DataConfig(_Record):
    """Data settings (group ``PtychoPINNTorchData``)."""

    N: int = 128
    C: int = 4
    normalize: str = "Batch"
    neighbor_function: str = "Nearest"
    scan_pattern: str = "Isotropic"
    probe_normalize: bool = True
    x_bounds: tuple = (0.1, 0.9)
    y_bounds: tuple = (0.1, 0.9)
    min_neighbor_distance: float = 0.0
    max_neighbor_distance: float = 3.0
    K_quadrant: int = 30
    n_subsample: int = 7
    probe_scale: float = 4.0
    K: int = 6
    grid_size: tuple = (2, 2)
    probe_ramp_removal: bool = False
    data_scaling: str = "Parseval"
    phase_subtraction: bool = True


@dataclass
class ModelConfig(_Record):
    """Model settings (group ``PtychoPINNTorchModel``) and the runner's generator fields."""

    mode: str = "Unsupervised"
    object_big: bool = True
    probe_big: bool = True
    loss_function: str = "Poisson"
    amp_activation: str = "silu"
    cbam_encoder: bool = True
    decoder_last_amp_channels: int = 4
    use_shared_decoder: bool = False
    intensity_scale_trainable: bool = False
    intensity_scale: float = 10000.0
    max_position_jitter: int = 10
    num_datasets: int = 1
    C_model: int = 4
    C_forward: int = 4
    amp_loss: Optional[str] = None
    phase_loss: Optional[str] = None
    amp_loss_coeff: float = 1.0
    phase_loss_coeff: float = 1.0
    n_filters_scale: int = 2
    probe_mask: Optional[object] = None
    eca_decoder: bool = False
    batch_norm: bool = False
    edge_pad: int = 10
    decoder_last_c_outer_fraction: float = 0.125
    cbam_bottleneck: bool = False
    cbam_decoder: bool = False
    spatial_decoder: bool = False
    decoder_spatial_kernel: int = 7
    eca_encoder: bool = False
    offset: int = 6
    probe_reference_coeff: float = 0.0
    amplitude_variance_loss: bool = False
    amplitude_variance_coeff: float = 0.01
    # the runner's generator (never set by Ptychodus; the fno_* defaults are the family's)
    architecture: str = "cnn"
    fno_modes: int = 12
    fno_width: int = 32
    fno_blocks: int = 4
    fno_cnn_blocks: int = 2


@dataclass
class TrainingConfig(_Record):
    """Training settings (group ``PtychoPINNTorchTraining``)."""

    epochs: int = 50
    batch_size: int = 16
    learning_rate: float = 1e-3
    n_devices: int = 1
    num_workers: int = 4
    accum_steps: int = 1
    epochs_fine_tune: int = 0
    fine_tune_gamma: float = 0.1
    gradient_clip_val: Optional[float] = None
    nll: bool = True
    device: str = "cuda"
    strategy: str = "ddp_spawn"
    framework: str = "Lightning"
    orchestrator: str = "Lightning"
    scheduler: str = "Default"
    warmup_epochs: int = 0
    min_lr_ratio: float = 0.1
    notes: str = ""
    model_name: str = "PtychoPINNv2"
    enable_staged_finetuning: bool = False
    finetune_stage1_epochs: int = 7
    finetune_stage2_epochs: int = 7
    finetune_stage3_epochs: int = 5
    finetune_stage1_lr_decoder: float = 0.1
    finetune_stage2_lr_encoder_top: float = 0.01
    finetune_stage2_lr_decoder: float = 0.05
    finetune_stage2_lr_phase_head: float = 0.1
    finetune_stage3_lr_encoder_bottom: float = 0.005
    finetune_stage3_lr_encoder_top: float = 0.01
    finetune_stage3_lr_decoder: float = 0.02
    finetune_stage3_lr_phase_head: float = 0.05
    finetune_skip_stage3: bool = True
    finetune_early_stop_patience: int = 3
    finetune_val_split: float = 0.05


@dataclass
class InferenceConfig(_Record):
    """Inference settings (group ``PtychoPINNTorchInference``)."""

    batch_size: int = 1000
    middle_trim: int = 32
    experiment_number: int = 0
    patch_weighting: str = "probe"
    pad_eval: bool = True
    window: int = 20


@dataclass
class DatagenConfig(_Record):
    """Ptychodus builds it bare; this back end simulates nothing through it."""


_RENAMED = {
    "DataConfig": {"N": "model_size", "C": "num_channels", "normalize": "data_normalization_mode",
                   "neighbor_function": "neighbor_lookup_method", "probe_normalize": "normalize_probe",
                   "x_bounds": "x_lower_bound, x_upper_bound",
                   "y_bounds": "y_lower_bound, y_upper_bound",
                   "K_quadrant": "num_nearest_neighbors_for_quadrant_lookup",
                   "n_subsample": "coordinate_subsampling_factor",
                   "K": "num_nearest_neighbors_for_lookup", "grid_size": "grid_size_y, grid_size_x",
                   "data_scaling": "data_scaling_method", "phase_subtraction": "subtract_mean_phase"},
    "ModelConfig": {"mode": "Algorithm", "amp_activation": "amplitude_activation_function",
                    "decoder_last_amp_channels": "num_channels", "C_model": "num_channels",
                    "C_forward": "num_channels", "amp_loss": "auxiliary_amplitude_loss",
                    "phase_loss": "auxiliary_phase_loss",
                    "amp_loss_coeff": "auxiliary_amplitude_loss_coeff",
                    "phase_loss_coeff": "auxiliary_phase_loss_coeff",
                    "n_filters_scale": "num_filters_scale", "batch_norm": "use_batch_normalization",
                    "probe_reference_coeff": "probe_reference_loss_coeff"},
    "TrainingConfig": {"num_workers": "num_dataloader_workers",
                       "accum_steps": "gradient_accumulation_steps",
                       "epochs_fine_tune": "epochs_finetune", "fine_tune_gamma": "finetune_gamma",
                       "nll": "use_negative_log_likelihood_loss",
                       "strategy": "distributed_strategy",
                       "scheduler": "learning_rate_scheduler",
                       "warmup_epochs": "learning_rate_warmup_epochs",
                       "min_lr_ratio": "minimum_learning_rate_ratio"},
    "InferenceConfig": {"patch_weighting": "patch_weighting_method"},
}
_GROUP = {"DataConfig": "PtychoPINNTorchData", "ModelConfig": "PtychoPINNTorchModel",
          "TrainingConfig": "PtychoPINNTorchTraining", "InferenceConfig": "PtychoPINNTorchInference"}


_RUNNER_FIELDS = ("architecture", "fno_modes", "fno_width", "fno_blocks", "fno_cnn_blocks")


def _settings() -> dict:
    out = {}
    for cls in (DataConfig, ModelConfig, TrainingConfig, InferenceConfig):
        name = cls.__name__
        group = _GROUP[name] if name != "ModelConfig" else None
        for f in fields(cls):
            setting = _RENAMED[name].get(f.name, f.name)
            if name == "ModelConfig" and f.name in _RUNNER_FIELDS:
                out[(name, f.name)] = f"ModelConfig.{f.name}"
                continue
            if name == "ModelConfig":
                group = ("Processing" if f.name == "mode" else "PtychoPINNTorchData"
                         if setting == "num_channels" else "PtychoPINNTorchModel")
            out[(name, f.name)] = f"{group}.{setting}"
    return out


#: ``(class name, keyword) -> "PtychoPINNTorch<Group>.<setting>"``, the Ptychodus setting a
#: keyword comes from (``fno_*`` and ``architecture`` name themselves: no setting).
SETTINGS: dict = _settings()
