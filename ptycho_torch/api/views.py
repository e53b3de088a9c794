"""The Ptychodus settings view of a trained model (``ConfigManager.from_loaded_model``).

Ptychodus reads ``config_manager.model_config.mode`` of a loaded model and shows nothing
else; the view still states every setting that has a counterpart, from the model's family
configs, so any checkpoint this project writes (a ``ptycho-study`` one too) has one.
"""
from __future__ import annotations

from ptycho_torch import config_params as cp

__all__ = ["ptychodus_view"]

_ACTIVATION = {"amp_phase": "sigmoid", "amp_silu_phase": "silu"}
_LOSS = {"poisson": "Poisson", "mae": "MAE"}


def ptychodus_view(model_config, training_config, inference_config) -> tuple:
    """``(data, model, training, inference)`` :mod:`ptycho_torch.config_params` records of
    family configs; values without a counterpart keep the settings' defaults."""
    mc, tc, ic = model_config, training_config, inference_config
    g = int(mc.gridsize)
    C = g * g
    data = cp.DataConfig(N=int(mc.N), C=C, grid_size=(g, g))
    model = cp.ModelConfig(
        mode="Unsupervised", loss_function=_LOSS.get(tc.loss, tc.loss),
        amp_activation=_ACTIVATION.get(mc.generator_output_mode, mc.generator_output_mode),
        cbam_encoder=mc.encoder_attention == "cbam",
        decoder_last_amp_channels=C, C_model=C, C_forward=C,
        n_filters_scale=int(mc.n_filters_scale), architecture=mc.architecture,
        fno_modes=mc.fno_modes, fno_width=mc.fno_width, fno_blocks=mc.fno_blocks,
        fno_cnn_blocks=mc.fno_cnn_blocks)
    training = cp.TrainingConfig(epochs=int(tc.epochs), batch_size=int(tc.batch_size),
                                 learning_rate=float(tc.learning_rate), device=tc.device)
    inference = cp.InferenceConfig(
        batch_size=int(ic.infer_batch_size), middle_trim=int(ic.crop_for(mc.N)),
        patch_weighting=ic.stitch_weighting)
    return data, model, training, inference
