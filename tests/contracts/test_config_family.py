"""The config family meets its implementations: every choice tuple of
ptycho.config.config equals the keys of the map that implements it, every entry of each map
works, and the configs reach the Lightning module (built through
ptycho_torch.config_factory, see test_runner_contract.py)."""
import cmath
import math
import re
import types

import pytest
import torch

from ptycho import stitching
from ptycho.config import choices, study_config
from ptycho.config.config import DataConfig, ModelConfig, TrainingConfig
from ptycho.config.study_config import StudyConfig
from ptycho_torch.core import losses
from ptycho_torch.model import lightning_module as model_module
from ptycho_torch.engine import loggers as engine_loggers
from ptycho_torch.engine import weight_averaging
from ptycho_torch.engine.device import resolve_device
from ptycho_torch.generators import GENERATORS, attention, build_generator, layers
from ptycho_torch.model import PtychoPINN_Lightning

SMALL = dict(N=32, fno_width=8, fno_modes=4, fno_blocks=1, fno_cnn_blocks=1, n_filters_scale=1)

MAPS = [
    ("ARCHITECTURES", choices.ARCHITECTURES, GENERATORS),
    ("LOSSES", choices.LOSSES, losses.LOSSES),
    ("INPUT_TRANSFORMS", choices.INPUT_TRANSFORMS, model_module._INPUT_TRANSFORMS),
    ("OUTPUT_MODES", choices.OUTPUT_MODES, layers.OUTPUT_READERS),
    ("ENCODER_ATTENTIONS", choices.ENCODER_ATTENTIONS, attention.ENCODER_ATTENTIONS),
    ("STITCH_MODES", choices.STITCH_MODES, stitching.STITCH_MODES),
    ("SUBPIXEL_MODES", choices.SUBPIXEL_MODES, stitching.SUBPIXEL_MODES),
    ("STITCH_WEIGHTINGS", choices.STITCH_WEIGHTINGS, stitching.STITCH_WEIGHTINGS),
    ("OPTIMIZERS", choices.OPTIMIZERS, model_module.OPTIMIZERS),
    ("SCHEDULERS", choices.SCHEDULERS, model_module.SCHEDULERS),
    ("LOGGERS", choices.LOGGERS, engine_loggers.NEEDS),
    ("WEIGHT_AVERAGES", choices.WEIGHT_AVERAGES, weight_averaging.WEIGHT_AVERAGES),
]


@pytest.mark.parametrize("name,choices,implementation", MAPS, ids=[m[0] for m in MAPS])
def test_choice_tuple_equals_the_implementation_keys(name, choices, implementation):
    assert sorted(choices) == sorted(implementation), name
    assert len(set(choices)) == len(choices)


def test_every_config_enumeration_is_covered_by_a_map():
    """Every field with choices is one of the tuples tested above (or a plain-value set)."""
    tested = {id(m[1]) for m in MAPS}
    plain = {id(t) for t in (choices.DEVICES, choices.STRATEGIES, choices.DATA_UNITS, choices.PRESETS,
                             choices.SUPPORTED_N, choices.SUPPORTED_GRIDSIZE, choices.CXI_TRANSLATION_SIGNS,
                             choices.PROBE_UPDATES, choices.PROBE_SCALE_MODES,
                             choices.PRECISIONS)}  # test_precision.py
    seen = set()
    for section, f in study_config.leaf_fields():
        if "choices" in f.metadata:
            assert id(f.metadata["choices"]) in tested | plain, f"{section}.{f.name}"
            seen.add(id(f.metadata["choices"]))
    assert tested <= seen  # every tuple tested above is some field's choices


@pytest.mark.parametrize("device", choices.DEVICES)
def test_every_device_choice_resolves(device, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if device == "cuda":
        with pytest.raises(ValueError, match=re.escape("device='cuda' but no CUDA device is "
                                                       "available")):
            resolve_device(device)
    else:
        assert resolve_device(device) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(device) == ("cpu" if device == "cpu" else "cuda")
    with pytest.raises(ValueError, match=r"^device='tpu' is not allowed"):
        resolve_device("tpu")


def _module(**over):
    keys = study_config.flat_owner()
    cfg = StudyConfig().replace(**{k: v for k, v in {**SMALL, **over}.items() if k in keys})
    data = DataConfig(**{k: v for k, v in over.items() if k in ("input_scale", "photon_scale")})
    return PtychoPINN_Lightning(cfg.model, data, cfg.training)


@pytest.mark.parametrize("optimizer", choices.OPTIMIZERS)
@pytest.mark.parametrize("scheduler", choices.SCHEDULERS)
def test_every_optimizer_and_scheduler_is_built(optimizer, scheduler):
    module = _module(optimizer=optimizer, scheduler=scheduler, learning_rate=3e-4,
                     weight_decay=0.01)
    module._trainer = types.SimpleNamespace(estimated_stepping_batches=100)  # onecycle's plan
    conf = module.configure_optimizers()
    opt = conf if scheduler == "none" else conf["optimizer"]
    assert type(opt) is model_module.OPTIMIZERS[optimizer]
    # onecycle starts its warm-up at learning_rate / 10
    lr0 = 3e-5 if scheduler == "onecycle" else 3e-4
    assert opt.param_groups[0]["lr"] == pytest.approx(lr0)
    assert opt.param_groups[0]["weight_decay"] == 0.01
    if scheduler == "plateau":
        assert isinstance(conf["lr_scheduler"]["scheduler"],
                          torch.optim.lr_scheduler.ReduceLROnPlateau)


def test_one_cycle_warms_up_then_decays_to_min_lr_at_the_planned_step():
    module = _module(scheduler="onecycle", learning_rate=2e-3, min_lr=2e-4)
    module._trainer = types.SimpleNamespace(estimated_stepping_batches=50)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["interval"] == "step"
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(49):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(2e-4)               # learning_rate / 10
    assert max(lrs) == pytest.approx(2e-3) and lrs.index(max(lrs)) in (4, 5)  # 10 % warm-up
    assert lrs[-1] == pytest.approx(2e-4, rel=1e-3)   # min_lr at the last planned step
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:]))   # decays monotonically


@pytest.mark.parametrize("mode", choices.OUTPUT_MODES)
def test_every_output_mode_is_read_by_the_head(mode):
    head = layers.ComplexOutputHead(2, 1, mode)
    with torch.no_grad():
        head.proj.weight.zero_()
        head.proj.bias.copy_(torch.tensor([0.3, 0.4]))
    y = head(torch.zeros(1, 2, 2, 2))
    sigmoid = 1 / (1 + math.exp(-0.3))
    expected = {"real_imag": complex(0.3, 0.4),
                "amp_phase": cmath.rect(sigmoid, math.pi * math.tanh(0.4)),
                "amp_silu_phase": cmath.rect(0.3 * sigmoid, math.pi * math.tanh(0.4))}[mode]
    torch.testing.assert_close(y, torch.full((1, 1, 2, 2), expected).to(torch.complex64))


@pytest.mark.parametrize("loss", choices.LOSSES)
def test_every_loss_is_wired_with_the_data_config(loss):
    m = _module(loss=loss, photon_scale=7.0)
    x = torch.rand(2, 1, 32, 32) + 0.1
    pred = 1.1 * x
    expected = (losses.poisson_nll(pred, x, photon_scale=7.0) if loss == "poisson"
                else losses.normalized_amplitude_mae(pred, x))
    assert float(m.loss_fn(pred, x)) == pytest.approx(float(expected))


def test_configs_reach_the_module_and_round_trip_through_hparams():
    cfg = StudyConfig().replace(architecture="fno", fno_width=24, fno_modes=6, fno_blocks=3,
                                fno_cnn_blocks=1, N=32, gridsize=2, epochs=7)
    data = DataConfig(input_scale=2.5, photon_scale=7.0)
    m = PtychoPINN_Lightning(cfg.model, data, cfg.training)
    assert m.model_config == cfg.model and m.training_config == cfg.training
    assert m.data_config == data and m.model_config.channels == 4
    assert m.hparams["model_config"]["fno_width"] == 24
    # the dict forms (as load_from_checkpoint passes them) build the same module
    again = PtychoPINN_Lightning(cfg.model.to_dict(), data.to_dict(), cfg.training.to_dict())
    assert again.model_config == cfg.model and again.data_config == data
    assert m.probe.shape == (32, 32) and m.valid_mask.shape == (32, 32)
    k = PtychoPINN_Lightning(cfg.model, DataConfig(probe_modes=3), cfg.training)
    assert k.probe.shape == (3, 32, 32)


def test_module_refuses_unknown_or_bad_config_keys():
    with pytest.raises(ValueError, match=re.escape("unknown ModelConfig key 'fno_widht'; did you "
                                                   "mean 'fno_width'")):
        PtychoPINN_Lightning({"fno_widht": 8}, DataConfig(), TrainingConfig())
    with pytest.raises(ValueError, match=re.escape("ModelConfig.fno_width=1")):
        PtychoPINN_Lightning({"fno_width": 1}, DataConfig(), TrainingConfig())


def test_build_generator_accepts_config_mapping_and_validates_it():
    assert type(build_generator(ModelConfig(architecture="cnn", **SMALL))).__name__ == "CNNGenerator"
    gen = build_generator({**SMALL, "architecture": "fno"})
    assert type(gen) is GENERATORS["fno"]
    with pytest.raises(ValueError, match=re.escape("ModelConfig.fno_modes=20 exceeds N//2=16")):
        build_generator({**SMALL, "fno_modes": 20})


@pytest.mark.parametrize("planned", [1, 2, 3, 5, 10, 19])
def test_one_cycle_runs_a_short_plan_peaking_at_the_second_step(planned):
    """torch's OneCycleLR divides by zero when 10 % of the plan is under 2 steps; a short
    run peaks at its second step instead and runs every planned step."""
    module = _module(scheduler="onecycle", learning_rate=2e-3, min_lr=2e-4)
    module._trainer = types.SimpleNamespace(estimated_stepping_batches=planned)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(planned):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(2e-4)
    if planned >= 3:
        assert lrs[1] == pytest.approx(2e-3)            # the peak, at the second step
