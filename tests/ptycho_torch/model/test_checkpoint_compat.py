"""A model.ckpt written before the restructuring (tests/ptycho_torch/data/README.md) still loads:
same hyperparameter keys, same state-dict keys, same predictions; weights only, no
--trust-checkpoint (it holds tensors and plain values, as every checkpoint of this project)."""
from pathlib import Path

import numpy as np
import torch

from ptycho_torch.engine.inference import predict_patches
from ptycho_torch.model import PtychoPINN_Lightning
from ptycho_torch.model.checkpoint import load_model

DATA = Path(__file__).resolve().parents[1] / "data"


def test_a_checkpoint_from_before_the_move_loads_and_predicts_the_same(tiny_data):
    _, test = tiny_data
    ckpt = torch.load(DATA / "pre_move_fno.ckpt", map_location="cpu", weights_only=True)
    assert set(ckpt["hyper_parameters"]) == {"model_config", "data_config", "training_config"}
    keys = set(ckpt["state_dict"])
    assert {"physics.probe", "valid_mask"} <= keys and any(k.startswith("generator.") for k in keys)
    model = load_model(str(DATA / "pre_move_fno.ckpt"), "cpu")
    assert isinstance(model, PtychoPINN_Lightning)
    assert model.model_config.architecture == "fno" and model.model_config.fno_width == 8
    with np.load(DATA / "pre_move_fno_expected.npz", allow_pickle=False) as z:
        expected = z["patches"]
    got = predict_patches(model, test, 7)[:4]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
