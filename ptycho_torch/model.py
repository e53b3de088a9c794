"""Lightning adapter: generator -> (overlap constraint) -> object x probe -> |FFT| -> loss.

The generator, the physics and the loss are separate modules (testable without
Lightning); this class only wires them and holds the training loop hooks.
"""
from __future__ import annotations

from functools import partial

import lightning as L
import torch

from ptycho_torch import physics
from ptycho_torch.config_params import DataConfig, ModelConfig, TrainingConfig
from ptycho_torch.generators import build_generator


class PtychoPINN_Lightning(L.LightningModule):
    """Physics-informed, unsupervised ptychography reconstruction.

    Args are the PyTorch-side configs (or their ``to_dict()`` forms, as restored by
    ``load_from_checkpoint``). The probe used for training is a buffer (``self.probe``,
    complex64 (N, N)) saved with the weights; set it with :meth:`set_probe`.
    """

    def __init__(self, model_config, data_config, training_config):
        super().__init__()
        self.model_config = ModelConfig.from_dict(_as_dict(model_config))
        self.data_config = DataConfig.from_dict(_as_dict(data_config))
        self.training_config = TrainingConfig.from_dict(_as_dict(training_config))
        self.save_hyperparameters({
            "model_config": self.model_config.to_dict(),
            "data_config": self.data_config.to_dict(),
            "training_config": self.training_config.to_dict(),
        })
        self.generator = build_generator(self.model_config)
        n = self.model_config.N
        self.register_buffer("probe", torch.ones(n, n, dtype=torch.complex64))
        loss = physics.get_loss(self.training_config.loss)
        if self.training_config.loss == "poisson":
            loss = partial(loss, photon_scale=self.data_config.photon_scale)
        self.loss_fn = loss

    # ------------------------------------------------------------------ physics path
    def set_probe(self, probe) -> None:
        """Copy the known probe (N, N) complex into the module's buffer."""
        probe = torch.as_tensor(probe).to(torch.complex64)
        n = self.model_config.N
        if probe.shape != (n, n):
            raise ValueError(f"probe has shape {tuple(probe.shape)}; expected ({n}, {n}) for N={n}")
        with torch.no_grad():
            self.probe.copy_(probe.to(self.probe.device))

    def _object_patches(self, x, positions, input_scale_factor):
        obj = self.generator(_INPUT_TRANSFORMS[self.model_config.input_transform](x * input_scale_factor))
        if self.model_config.gridsize > 1 and self.model_config.overlap_constraint:
            obj = physics.apply_overlap_constraint(obj, positions)
        return obj

    def forward(self, x, positions, probe, input_scale_factor):
        """Predicted diffraction amplitude.

        x (B,C,N,N) float32 measured amplitudes; positions (B,C,1,2) float32 (x, y)
        offsets from the group centre; probe complex64 broadcastable to (B,C,N,N);
        input_scale_factor (B,1,1,1) float32. Returns (B,C,N,N) float32.
        """
        return physics.diffraction_amplitude(self._object_patches(x, positions, input_scale_factor), probe)

    def forward_predict(self, x, positions, probe, input_scale_factor):
        """Object patches (B,C,N,N) complex64 (after the overlap constraint when gridsize > 1).

        Same arguments as :meth:`forward`; ``probe`` is accepted for the firm contract
        (the object does not depend on it for a trained generator).
        """
        return self._object_patches(x, positions, input_scale_factor).to(torch.complex64)

    # ----------------------------------------------------------------- training loop
    def _step(self, batch, stage: str):
        x, positions, scale = batch
        pred = self(x, positions, self.probe, scale)
        loss = self.loss_fn(pred, x)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=x.shape[0], sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def configure_optimizers(self):
        tc = self.training_config
        opt_cls = torch.optim.AdamW if tc.optimizer == "adamw" else torch.optim.Adam
        opt = opt_cls(self.parameters(), lr=tc.learning_rate, weight_decay=tc.weight_decay)
        if tc.scheduler == "none":
            return opt
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=tc.plateau_factor, patience=tc.plateau_patience,
            min_lr=min(tc.min_lr, tc.learning_rate))
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": sched, "monitor": "val_loss", "interval": "epoch"}}


_INPUT_TRANSFORMS = {
    "none": lambda v: v,
    "sqrt": lambda v: torch.sqrt(torch.clamp(v, min=0.0)),
    "log1p": lambda v: torch.log1p(torch.clamp(v, min=0.0)),
}


def _as_dict(cfg) -> dict:
    return cfg if isinstance(cfg, dict) else cfg.to_dict()
