"""Lightning adapter: generator -> (overlap constraint) -> object x probe -> |FFT| -> loss.

The generator, the physics and the loss are separate modules (testable without
Lightning); this class only wires them and holds the training loop hooks.
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial

import lightning as L
import torch

from ptycho.config.config import DataConfig, ModelConfig, TrainingConfig
from ptycho.config.probe_config import ProbeConfig
from ptycho_torch.core import losses, overlap, physics
from ptycho_torch.core.precision import autocast, float32_island
from ptycho_torch.generators import build_generator
from ptycho_torch.generators.channels_last import to_channels_last
from ptycho_torch.core.learned_probe import LearnedProbe


class PtychoPINN_Lightning(L.LightningModule):
    """Physics-informed, unsupervised ptychography reconstruction.

    Args are the configs (or their ``to_dict()`` forms, as restored by
    ``load_from_checkpoint``). The forward operator is ``self.physics``, a
    :class:`~ptycho_torch.core.physics.FarFieldPtychography` holding the probe ((N, N), or
    (modes, N, N) with ``data_config.probe_modes`` modes) as a buffer saved with the
    weights; set it with :meth:`set_probe`. ``self.valid_mask`` ((N, N), 1 = measured) is
    the detector mask the loss uses (all ones unless bad pixels are set with
    :meth:`set_bad_pixels`).
    """

    #: the metrics each epoch logs (``callback_metrics``): training and validation loss
    loss_name = "train_loss"
    val_loss_name = "val_loss"

    def __init__(self, model_config, data_config, training_config, probe_config=None):
        super().__init__()
        self.model_config = ModelConfig.from_dict(_as_dict(model_config))
        self.data_config = DataConfig.from_dict(_as_dict(data_config))
        self.training_config = TrainingConfig.from_dict(_as_dict(training_config))
        self.probe_config = ProbeConfig.from_dict(_as_dict(probe_config or ProbeConfig()))
        hparams = {"model_config": self.model_config.to_dict(),
                   "data_config": self.data_config.to_dict(),
                   "training_config": self.training_config.to_dict()}
        if self.probe_config.probe_update == "learn":   # older checkpoints have none
            hparams["probe_config"] = self.probe_config.to_dict()
        self.save_hyperparameters(hparams)
        self.generator = build_generator(self.model_config)
        if self.training_config.channels_last:
            to_channels_last(self.generator)
        n, k = self.model_config.N, self.data_config.probe_modes
        shape = (n, n) if k == 1 else (k, n, n)
        self.physics = physics.FarFieldPtychography(torch.ones(shape, dtype=torch.complex64))
        # probe_update="learn": a trainable probe correction (ptycho_torch.core.learned_probe)
        self.learned_probe = (LearnedProbe(self.physics.probe)
                              if self.probe_config.probe_update == "learn" else None)
        self.register_buffer("valid_mask", torch.ones(n, n))
        loss = losses.get_loss(self.training_config.loss)
        if self.training_config.loss == "poisson":
            loss = partial(loss, photon_scale=self.data_config.photon_scale)
        self.loss_fn = loss
        # the overlap canvas of the scan being fitted or predicted (set_scan_geometry):
        # fixed once per scan, so no training step synchronises with the host for it
        self.overlap_region_size: int | None = None
        self.reconstruct_request: dict = {}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Keep what the file asks of reconstruction (``hyper_parameters["reconstruct"]``,
        which Lightning does not pass to ``__init__``; :mod:`ptycho_torch.api.refine_plan`)."""
        hp = checkpoint.get("hyper_parameters") or {}
        self.reconstruct_request = dict(hp.get("reconstruct") or {})

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, hparams_file=None,
                             strict=None, weights_only: bool = True, **kwargs):
        """Lightning's ``load_from_checkpoint``, weights only unless told otherwise: the file
        is unpickled by torch's weights-only loader (tensors and plain values; nothing else
        is constructed or called), whatever ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says. A
        file holding other Python objects raises ``pickle.UnpicklingError``;
        ``weights_only=False`` unpickles it in full (it can run code: only for a trusted
        file; :func:`ptycho_torch.model.checkpoint.load_model` is the checked way)."""
        return super().load_from_checkpoint(checkpoint_path, map_location=map_location,
                                            hparams_file=hparams_file, strict=strict,
                                            weights_only=bool(weights_only), **kwargs)

    @property
    def precision(self) -> str:
        """'32' or 'bf16-mixed': the arithmetic of training and of :meth:`forward_predict`."""
        return self.training_config.precision

    def set_precision(self, precision: str) -> None:
        """Predict under ``precision`` from now on (the weights stay float32)."""
        self.training_config = replace(self.training_config, precision=precision)

    # ------------------------------------------------------------------ physics path
    @property
    def probe(self) -> torch.Tensor:
        """The forward operator's probe buffer (complex64): the probe training started from."""
        return self.physics.probe

    def current_probe(self) -> torch.Tensor:
        """The probe the forward model uses now (detached): the learned one with
        ``probe_update="learn"``, else the operator's buffer."""
        with torch.no_grad():
            if self.learned_probe is None:
                return self.physics.probe.detach().clone()
            return self.learned_probe(self.physics.probe).detach()

    def set_probe(self, probe) -> None:
        """Copy the known probe ((N, N), or (modes, N, N)) into the operator's buffer."""
        probe = torch.as_tensor(probe).to(torch.complex64)
        if probe.ndim == 3 and probe.shape[0] == 1:
            probe = probe[0]
        if probe.shape != self.physics.probe.shape:
            raise ValueError(f"probe has shape {tuple(probe.shape)}; expected "
                             f"{tuple(self.physics.probe.shape)} for N={self.model_config.N} and "
                             f"probe_modes={self.data_config.probe_modes}")
        with torch.no_grad():
            self.physics.probe.copy_(probe.to(self.physics.probe.device))
        if self.learned_probe is not None:
            self.learned_probe.reset(self.physics.probe)

    def set_scan_geometry(self, coords_nominal) -> None:
        """Fix the overlap constraint's canvas for a scan (its ``coords_nominal``, the
        (x, y) offsets of every group, NumPy or tensor): computed once here on the host
        (:func:`ptycho_torch.core.overlap.overlap_region_size`) instead of twice per step from
        each batch. Every batch then passed must come from that scan."""
        self.overlap_region_size = overlap.overlap_region_size(coords_nominal,
                                                               self.model_config.N)

    def set_bad_pixels(self, bad_pixels) -> None:
        """Exclude detector pixels (``bad_pixels`` (N, N) bool, True = not measured) from the loss."""
        bad = torch.as_tensor(bad_pixels, dtype=torch.bool)
        if bad.shape != self.valid_mask.shape:
            raise ValueError(f"bad_pixels has shape {tuple(bad.shape)}; expected "
                             f"{tuple(self.valid_mask.shape)}")
        with torch.no_grad():
            self.valid_mask.copy_((~bad).to(self.valid_mask.dtype).to(self.valid_mask.device))

    def _object_patches(self, x, positions, input_scale_factor):
        x = _INPUT_TRANSFORMS[self.model_config.input_transform](x * input_scale_factor)
        if self.training_config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        obj = self.generator(x)
        if self.model_config.gridsize > 1 and self.model_config.overlap_constraint:
            obj = overlap.apply_overlap_constraint(obj, positions,
                                                   self.model_config.overlap_weight,
                                                   region_size=self.overlap_region_size)
        return obj

    def forward(self, x, positions, probe, input_scale_factor):
        """Predicted diffraction amplitude.

        x (B,C,N,N) float32 measured amplitudes; positions (B,C,1,2) float32 (x, y)
        offsets from the group centre; probe complex64 broadcastable to (B,C,N,N) (or
        (modes, N, N)), or None for the operator's own probe; input_scale_factor
        (B,1,1,1) float32. Returns (B,C,N,N) float32.
        """
        obj = self._object_patches(x, positions, input_scale_factor)
        with float32_island(obj.device.type):  # the forward model in complex64, always
            obj = obj.to(torch.complex64)
            if probe is None or probe is self.physics.probe:
                if self.learned_probe is None:
                    return self.physics(obj)
                probe = self.learned_probe(self.physics.probe)
            return physics.diffraction_amplitude(obj, probe, probe_modes=probe.ndim == 3)

    def forward_predict(self, x, positions, probe, input_scale_factor):
        """Object patches (B,C,N,N) complex64 (after the overlap constraint when gridsize > 1).

        Same arguments as :meth:`forward`. ``probe`` is **not used**: the generator maps
        measured amplitudes to object patches, and the probe enters only the forward
        model of training. It is kept for the seed's signature
        ``forward_predict(x, positions, probe, input_scale_factor)``; its shape is checked
        ((N, N) or (modes, N, N), or None) but it is never moved to the device.
        """
        if probe is not None:
            N = self.model_config.N
            shape = tuple(probe.shape)
            if len(shape) not in (2, 3, 4) or shape[-2:] != (N, N):
                raise ValueError(f"forward_predict: probe has shape {shape} (allowed: ({N}, {N}) "
                                 f"or (modes, {N}, {N}), or None; it is not used)")
        with autocast(self.precision, x.device.type):  # as in training
            return self._object_patches(x, positions, input_scale_factor).to(torch.complex64)

    # ----------------------------------------------------------------- training loop
    def physics_loss(self, x, positions, scale, mask=None):
        """The unsupervised training loss of one batch: the predicted diffraction amplitude
        of the generator's object (through the operator's probe) against the measured ``x``,
        by ``training_config.loss``, over the pixels of ``mask`` ((N, N), 1 = measured;
        default :attr:`valid_mask`). Runs in the caller's autocast region; the loss in
        float32. Arguments as :meth:`forward`."""
        pred = self(x, positions, None, scale)
        with float32_island(x.device.type):
            return self.loss_fn(pred.float(), x,
                                mask=self.valid_mask if mask is None else mask)

    def _step(self, batch, stage: str):
        x, positions, scale = batch
        loss = self.physics_loss(x, positions, scale)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=x.shape[0], sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def on_train_epoch_start(self) -> None:
        if self.learned_probe is not None:   # the object first: the probe waits its warm-up
            train = self.current_epoch >= self.probe_config.probe_warmup_epochs
            self.learned_probe.correction.requires_grad_(train)

    def configure_optimizers(self):
        tc = self.training_config
        params = self.parameters()
        if self.learned_probe is not None:   # the probe correction at its own learning rate
            params = [{"params": list(self.generator.parameters())},
                      {"params": [self.learned_probe.correction], "weight_decay": 0.0,
                       "lr": self.probe_config.probe_learning_rate}]
        opt = OPTIMIZERS[tc.optimizer](params, lr=tc.learning_rate,
                                       weight_decay=tc.weight_decay)
        make_scheduler = SCHEDULERS[tc.scheduler]
        if make_scheduler is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": make_scheduler(opt, tc, self)}


def _plateau_scheduler(opt, tc: TrainingConfig, module=None) -> dict:
    """ReduceLROnPlateau on the validation loss, stepped once per epoch."""
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=tc.plateau_factor, patience=tc.plateau_patience,
        min_lr=min(tc.min_lr, tc.learning_rate))
    return {"scheduler": sched, "monitor": "val_loss", "interval": "epoch"}


def _one_cycle_scheduler(opt, tc: TrainingConfig, module) -> dict:
    """torch's OneCycleLR over the planned optimizer steps (Lightning's
    ``estimated_stepping_batches``: epochs x batches, or max_steps), stepped every step:
    10 % warm-up from learning_rate/10, cosine decay to min_lr. A run stopped early by the
    wall-clock cap ends before the decay does (metrics.json records the stop). Under 20
    planned steps the rate peaks at the second step instead (torch's schedule divides by zero
    for a warm-up under one step; fewer than 4 planned steps run the start of a 4-step plan)."""
    total = max(int(module.trainer.estimated_stepping_batches), 4)
    lr = float(tc.learning_rate)
    start = lr / 10.0
    final = min(float(tc.min_lr), lr)
    # each parameter group peaks at its own learning rate (the learned probe has its own)
    peak = [lr * g["lr"] / opt.param_groups[0]["lr"] for g in opt.param_groups]
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=peak if len(peak) > 1 else lr, total_steps=total, pct_start=max(0.1, 2 / total),
        anneal_strategy="cos",
        div_factor=10.0, final_div_factor=max(start / final, 1.0) if final > 0 else 1e4)
    return {"scheduler": sched, "interval": "step"}


# keys = ptycho.config.choices.OPTIMIZERS (tested)
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
# keys = ptycho.config.choices.SCHEDULERS (tested); None: a constant learning rate
SCHEDULERS = {"plateau": _plateau_scheduler, "onecycle": _one_cycle_scheduler, "none": None}


# keys = ptycho.config.choices.INPUT_TRANSFORMS (tested)
_INPUT_TRANSFORMS = {
    "none": lambda v: v,
    "sqrt": lambda v: torch.sqrt(torch.clamp(v, min=0.0)),
    "log1p": lambda v: torch.log1p(torch.clamp(v, min=0.0)),
}


def _as_dict(cfg) -> dict:
    return cfg if isinstance(cfg, dict) else cfg.to_dict()
