"""The one way a model is built from its configs (the study pipeline, the config factory
and the Ptychodus host all call :func:`build_model`)."""
from __future__ import annotations

from ptycho.config.config import DataConfig, ModelConfig, TrainingConfig
from ptycho.dataset import PtychoDataset
from ptycho_torch.model.lightning_module import PtychoPINN_Lightning


def build_model(model_config: ModelConfig, data_config: DataConfig,
                training_config: TrainingConfig, train: PtychoDataset | None = None, *,
                probe_config=None) -> PtychoPINN_Lightning:
    """The Lightning module (its generator built from ``model_config``); with ``train``,
    that scan's probe and bad-pixel mask are set in the forward operator and its offsets
    fix the overlap constraint's canvas (``set_scan_geometry``, once per scan).
    ``probe_config`` (a :class:`ptycho.config.probe_config.ProbeConfig`): with
    ``probe_update="learn"`` the forward model learns a probe correction."""
    model = PtychoPINN_Lightning(model_config, data_config, training_config, probe_config)
    if train is not None:
        model.set_probe(train.probe)
        model.set_scan_geometry(train.coords_nominal)
        if train.bad_pixels is not None:
            model.set_bad_pixels(train.bad_pixels)
    return model
