"""Where configs become built objects: flat overrides -> validated configs -> the model.

    payload = create_training_payload(train_data_file="scan.npz", output_dir="out",
                                      overrides={"architecture": "fno", "fno_width": 64})
    model = PtychoPINN_Lightning(payload.model_config, payload.data_config,
                                 payload.training_config)

``overrides`` are the flat study fields (the ``TorchRunnerConfig`` keywords, one per CLI
flag); an unknown key is refused with the closest field names, a bad value by its field
(``ModelConfig.fno_width=0 is out of range (allowed: 4..512)``). ``preset`` in the
overrides applies that preset under the other keys, as on the command line. With a
``train_data_file`` the data-derived config (input scale, photon scale, probe modes) is
read from the file, and ``payload.build_model()`` sets that scan's probe and bad pixels in
the forward operator (``PtychoPINN_Lightning(...)`` alone starts from a flat probe, to be
set with ``set_probe``); without one it is ``DataConfig()``'s defaults, which the study
replaces with the values of its (simulated or read) training scan.

The study pipeline builds its model with the same :func:`build_model`
(:mod:`ptycho_torch.model.build`, called by ``ptycho_torch.engine.training.fit_model`` and
re-exported here with :func:`data_config_from`), so ``architecture``, ``N``, ``gridsize`` and the
``fno_*`` hyperparameters reach the generator by this one path.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping


from ptycho.config.config import DataConfig, InferenceConfig, ModelConfig, TrainingConfig
from ptycho.config.study_config import StudyConfig
from ptycho.config.runner_config import TorchRunnerConfig
from ptycho.config.validation import unknown_key_error
from ptycho.dataset import PtychoDataset
from ptycho.formats.readers import read_dataset
from ptycho_torch.engine.data import data_config_from
from ptycho_torch.model import PtychoPINN_Lightning, build_model

_OVERRIDE_KEYS = frozenset(f.name for f in fields(TorchRunnerConfig))


@dataclass(frozen=True)
class TrainingPayload:
    """The resolved configs of one training: the study and its PyTorch-side sections."""

    study: StudyConfig
    model_config: ModelConfig
    data_config: DataConfig
    training_config: TrainingConfig
    inference_config: InferenceConfig
    train: PtychoDataset | None = None

    def build_model(self, train: PtychoDataset | None = None) -> PtychoPINN_Lightning:
        """The Lightning module of these configs (see :func:`build_model`), with the probe
        and bad pixels of ``train`` (default: the training scan read from the file)."""
        return build_model(self.model_config, self.data_config, self.training_config,
                           self.train if train is None else train)


def create_training_payload(train_data_file: str | None = None, output_dir: str | None = None,
                            overrides: Mapping[str, Any] | None = None) -> TrainingPayload:
    """Validated configs from flat ``overrides`` (unknown keys and bad values refused).

    ``train_data_file`` (any supported scan file) and ``output_dir`` are the study's
    ``train_npz`` and ``output_dir``; giving them again in ``overrides`` with another value
    is refused.
    """
    values = dict(overrides or {})
    for key in values:
        if key not in _OVERRIDE_KEYS:
            raise unknown_key_error("override key", str(key), _OVERRIDE_KEYS)
    for key, given in (("train_npz", train_data_file), ("output_dir", output_dir)):
        if given is None:
            continue
        if key in values and str(values[key]) != str(given):
            raise ValueError(f"override {key}={values[key]!r} contradicts the argument "
                             f"{given!r} (allowed: one of them, or equal values)")
        values[key] = str(given)
    study = TorchRunnerConfig(**values).to_study()
    data_config, train = DataConfig(), None
    if study.run.train_npz is not None:
        train = read_dataset(study.run.train_npz, N=study.model.N, gridsize=study.model.gridsize,
                             unit=study.run.data_unit,
                             cxi_translation_sign=study.run.cxi_translation_sign,
                             k_nearest=study.training.k_nearest,
                             groups_per_position=study.training.groups_per_position)
        data_config = data_config_from(train)
    return payload_from_study(study, data_config, train)


def payload_from_study(study: StudyConfig, data_config: DataConfig,
                       train: PtychoDataset | None = None) -> TrainingPayload:
    """The payload of a study config, its data-derived config and (optional) training scan."""
    return TrainingPayload(study=study, model_config=study.model, data_config=data_config,
                           training_config=study.training, inference_config=study.inference,
                           train=train)


__all__ = ["TrainingPayload", "build_model", "create_training_payload", "data_config_from",
           "payload_from_study"]
