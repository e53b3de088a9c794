"""Ptychodus' PtychoPINN-Torch settings -> the project's flat study fields.

:func:`translate` reads the four :mod:`ptycho_torch.config_params` records Ptychodus builds
and returns the flat :class:`ptycho.config.runner_config.TorchRunnerConfig` overrides they
mean, or raises :class:`~ptycho.config.validation.ConfigError` with one line naming the
Ptychodus setting (``PtychoPINNTorch<Group>.<setting>=<value> is not supported by
ptychopinn-torch (allowed: ...)``). Each setting is in one of four classes:

- **honoured**: mapped onto a project field (``model_size`` -> ``N``, ``num_channels`` with
  ``grid_size`` -> ``gridsize``, ``loss_function`` -> ``loss``, ...);
- **fixed**: one value is what this project does (``object_big = True``: a full N x N
  object per pattern); any other is refused;
- **default only**: upstream-CNN or upstream-loader knobs with no counterpart here; the
  default is accepted and listed in the log (``notes``), any other value refused;
- **no effect**: bookkeeping (``notes``, ``model_name``, ``num_dataloader_workers``),
  accepted and listed in the log.

``x_bounds`` / ``y_bounds`` (``Translation.bounds``) select the training positions, as
upstream: only positions inside those fractions of the scan's x and y ranges train
(:func:`ptycho_torch.api.inputs.select_in_bounds`); every position is reconstructed.
``docs/guide/ptychodus.md`` has the table. Nothing here reads data; the pattern size is checked
against ``model_size`` when the data are read.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch

from ptycho.config.choices import SUPPORTED_N
from ptycho.config.validation import ConfigError
from ptycho_torch import config_params as cp

log = logging.getLogger(__name__)

BACKEND = "ptychopinn-torch"

# keyword -> the one value this project honours (any other is refused)
_FIXED = {
    "DataConfig": {"neighbor_function": "Nearest", "probe_ramp_removal": False,
                   "data_scaling": "Parseval", "normalize": "Batch"},
    "ModelConfig": {"object_big": True, "probe_big": True, "use_shared_decoder": False,
                    "intensity_scale_trainable": False, "num_datasets": 1, "amp_loss": None,
                    "phase_loss": None, "probe_mask": None, "eca_decoder": False,
                    "batch_norm": False, "cbam_bottleneck": False, "cbam_decoder": False,
                    "spatial_decoder": False, "eca_encoder": False,
                    "probe_reference_coeff": 0.0, "amplitude_variance_loss": False},
    "TrainingConfig": {"accum_steps": 1, "epochs_fine_tune": 0, "framework": "Lightning",
                       "orchestrator": "Lightning", "enable_staged_finetuning": False},
    "InferenceConfig": {"experiment_number": 0},
}
# upstream knobs without a counterpart: the default only
_DEFAULT_ONLY = {
    "DataConfig": ("scan_pattern", "probe_normalize", "probe_scale"),
    "ModelConfig": ("intensity_scale", "max_position_jitter", "edge_pad",
                    "decoder_last_c_outer_fraction", "decoder_spatial_kernel", "offset"),
    "TrainingConfig": ("warmup_epochs", "min_lr_ratio"),
    "InferenceConfig": ("pad_eval", "window"),
}
# accepted, no effect here
_NO_EFFECT = {
    "DataConfig": ("phase_subtraction", "min_neighbor_distance", "max_neighbor_distance",
                   "K_quadrant"),
    "ModelConfig": ("amp_loss_coeff", "phase_loss_coeff", "amplitude_variance_coeff"),
    "TrainingConfig": ("num_workers", "fine_tune_gamma", "notes", "model_name",
                       "finetune_stage1_epochs", "finetune_stage2_epochs", "finetune_stage3_epochs",
                       "finetune_stage1_lr_decoder", "finetune_stage2_lr_encoder_top",
                       "finetune_stage2_lr_decoder", "finetune_stage2_lr_phase_head",
                       "finetune_stage3_lr_encoder_bottom", "finetune_stage3_lr_encoder_top",
                       "finetune_stage3_lr_decoder", "finetune_stage3_lr_phase_head",
                       "finetune_skip_stage3", "finetune_early_stop_patience",
                       "finetune_val_split"),
}
_LOSSES = {"Poisson": "poisson", "MAE": "mae"}
_ACTIVATIONS = {"sigmoid": "amp_phase", "silu": "amp_silu_phase"}
_WEIGHTING = {"uniform": "uniform", "probe": "probe"}
_GENERATOR_FIELDS = ("architecture", "fno_modes", "fno_width", "fno_blocks", "fno_cnn_blocks")


@dataclass(frozen=True)
class Translation:
    """The flat study fields of a Ptychodus configuration, and what the log should say:
    ``notes`` (settings accepted at their default without a counterpart, or without effect)
    and ``changes`` (values this project runs differently, e.g. 'cuda' without CUDA)."""

    overrides: dict
    notes: list = field(default_factory=list)
    changes: list = field(default_factory=list)
    bounds: tuple = ((0.0, 1.0), (0.0, 1.0))


def refusal(cls_name: str, keyword: str, value, allowed: str) -> ConfigError:
    """The one-line refusal of a Ptychodus setting (see the module docstring)."""
    setting = cp.SETTINGS[(cls_name, keyword)]
    owner, _, name = setting.partition(".")
    return ConfigError(f"{setting}={_show(value)} is not supported by {BACKEND} "
                       f"(allowed: {allowed})", owner, name)


def _show(value) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return repr(value) if isinstance(value, str) else str(value)


def _check_fixed_and_defaults(records: dict) -> list[str]:
    notes = []
    for name, rec in records.items():
        default = type(rec)()
        for key, want in _FIXED.get(name, {}).items():
            if getattr(rec, key) != want:
                raise refusal(name, key, getattr(rec, key), _show(want))
        for key in _DEFAULT_ONLY.get(name, ()):
            value, want = getattr(rec, key), getattr(default, key)
            if _norm(value) != _norm(want):
                raise refusal(name, key, value, f"{_show(want)}; {BACKEND} has no counterpart")
            notes.append(cp.SETTINGS[(name, key)])
        notes.extend(cp.SETTINGS[(name, key)] for key in _NO_EFFECT.get(name, ()))
    return notes


def _norm(value):
    return tuple(float(v) for v in value) if isinstance(value, (tuple, list)) else value


def _data(d: cp.DataConfig) -> dict:
    if d.N not in SUPPORTED_N:
        raise refusal("DataConfig", "N", d.N, ", ".join(str(n) for n in SUPPORTED_N))
    grid = tuple(int(g) for g in d.grid_size)
    shapes = {(1, (1, 1)): 1, (4, (2, 2)): 2}
    if (d.C, grid) not in shapes:
        if grid not in ((1, 1), (2, 2)):
            raise refusal("DataConfig", "grid_size", grid, "(1, 1) or (2, 2)")
        raise refusal("DataConfig", "C", d.C, f"{grid[0] * grid[1]} with grid_size {grid}")
    gridsize = shapes[(d.C, grid)]
    out = {"N": int(d.N), "gridsize": gridsize}
    if gridsize == 2:
        if not 3 <= int(d.K) <= 64:
            raise refusal("DataConfig", "K", d.K, "3..64 at grid_size (2, 2)")
        most = math.comb(int(d.K), 3)
        if not 1 <= int(d.n_subsample) <= min(64, most):
            raise refusal("DataConfig", "n_subsample", d.n_subsample,
                          f"1..{min(64, most)}, the distinct groups of 3 among K={d.K}")
        out.update(k_nearest=int(d.K), groups_per_position=int(d.n_subsample))
    for key in ("x_bounds", "y_bounds"):
        lo, hi = (float(v) for v in getattr(d, key))
        if not 0.0 <= lo < hi <= 1.0:
            raise refusal("DataConfig", key, getattr(d, key), "0 <= lower < upper <= 1")
    return out


def _model(m: cp.ModelConfig, C: int) -> dict:
    if m.mode != "Unsupervised":
        raise ConfigError(f"Processing.Algorithm=ptychopinn-torch_{str(m.mode).lower()} is not "
                          f"supported by {BACKEND} (allowed: ptychopinn-torch_unsupervised; "
                          "supervised training is not built)", "Processing", "Algorithm")
    for key in ("decoder_last_amp_channels", "C_model", "C_forward"):
        if getattr(m, key) != C:
            raise refusal("ModelConfig", key, getattr(m, key), f"{C}, num_channels")
    if m.loss_function not in _LOSSES:
        raise refusal("ModelConfig", "loss_function", m.loss_function, "'Poisson' or 'MAE'")
    if m.amp_activation not in _ACTIVATIONS:
        raise refusal("ModelConfig", "amp_activation", m.amp_activation, "'silu' or 'sigmoid'")
    if not isinstance(m.n_filters_scale, int) or not 1 <= m.n_filters_scale <= 16:
        raise refusal("ModelConfig", "n_filters_scale", m.n_filters_scale, "1..16")
    if not isinstance(m.cbam_encoder, bool):
        raise refusal("ModelConfig", "cbam_encoder", m.cbam_encoder, "true or false")
    out = {k: getattr(m, k) for k in _GENERATOR_FIELDS}
    out.update(loss=_LOSSES[m.loss_function], n_filters_scale=int(m.n_filters_scale),
               generator_output_mode=_ACTIVATIONS[m.amp_activation])
    if m.cbam_encoder:
        out["encoder_attention"] = "cbam"
    return out


def _training(t: cp.TrainingConfig, loss_function: str) -> tuple[dict, list[str]]:
    changes = []
    if t.n_devices != 1:
        raise refusal("TrainingConfig", "n_devices", t.n_devices, "1")
    if loss_function == "Poisson" and t.nll is not True:
        raise refusal("TrainingConfig", "nll", t.nll, "True with loss_function 'Poisson'")
    device = t.device
    if device not in ("cpu", "cuda"):
        raise refusal("TrainingConfig", "device", device, "'cpu' or 'cuda'")
    if device == "cuda" and not torch.cuda.is_available():
        device = "cpu"
        changes.append("device 'cuda' requested but no CUDA device is available: training on "
                       "the CPU")
    if t.strategy not in ("ddp_spawn", "auto"):
        raise refusal("TrainingConfig", "strategy", t.strategy, "'ddp_spawn' or 'auto' with "
                      "n_devices 1")
    if t.scheduler != "Default":
        raise refusal("TrainingConfig", "scheduler", t.scheduler, "'Default'")
    clip = 0.0 if t.gradient_clip_val is None else float(t.gradient_clip_val)
    if not 0.0 <= clip <= 1e6:
        raise refusal("TrainingConfig", "gradient_clip_val", t.gradient_clip_val, "0..1e6")
    return ({"epochs": int(t.epochs), "batch_size": int(t.batch_size),
             "learning_rate": float(t.learning_rate), "device": device,
             "gradient_clip_val": clip, "scheduler": "none"}, changes)


def _inference(i: cp.InferenceConfig, N: int) -> dict:
    if not 1 <= int(i.middle_trim) <= N:
        raise refusal("InferenceConfig", "middle_trim", i.middle_trim, f"1..{N} (model_size)")
    if i.patch_weighting not in _WEIGHTING:
        raise refusal("InferenceConfig", "patch_weighting", i.patch_weighting,
                      "'probe' or 'uniform'")
    if not 1 <= int(i.batch_size) <= 1 << 20:
        raise refusal("InferenceConfig", "batch_size", i.batch_size, "1..1048576")
    out = {"infer_batch_size": int(i.batch_size), "stitch": "positions",
           "stitch_crop": int(i.middle_trim)}
    if i.patch_weighting != "uniform":
        out["stitch_weighting"] = _WEIGHTING[i.patch_weighting]
    return out


def translate(data: cp.DataConfig, model: cp.ModelConfig, training: cp.TrainingConfig,
              inference: cp.InferenceConfig) -> Translation:
    """The flat study fields of Ptychodus' four records, or a one-line refusal."""
    records = {"DataConfig": data, "ModelConfig": model, "TrainingConfig": training,
               "InferenceConfig": inference}
    for name, rec in records.items():
        if type(rec).__name__ != name or not hasattr(rec, "to_dict"):
            raise ConfigError(f"{name}: expected ptycho_torch.config_params.{name}, got "
                              f"{type(rec).__module__}.{type(rec).__name__}", name, "")
    notes = _check_fixed_and_defaults(records)
    overrides = _data(data)
    if overrides["gridsize"] == 1:      # groups of one: nothing to draw
        notes += [cp.SETTINGS[("DataConfig", k)] for k in ("K", "n_subsample")]
    overrides.update(_model(model, data.C))
    train, changes = _training(training, model.loss_function)
    overrides.update(train)
    overrides.update(_inference(inference, data.N))
    bounds = tuple(tuple(float(v) for v in b) for b in (data.x_bounds, data.y_bounds))
    return Translation(overrides=overrides, notes=notes, changes=changes, bounds=bounds)


def describe(tr: Translation) -> None:
    """Log what the translation changed and which settings have no effect here."""
    for line in tr.changes:
        log.warning("%s: %s", BACKEND, line)
    if tr.notes:
        log.info("%s: accepted without a counterpart here (default values only): %s", BACKEND,
                 ", ".join(tr.notes))

