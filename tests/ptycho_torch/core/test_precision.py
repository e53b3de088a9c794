"""Mixed precision and channels-last (ptycho_torch.core.precision): what runs in bfloat16, what
stays float32 / complex64, bit-exact reruns, the refusal, and what is recorded."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch import nn

import grid_lines_torch_runner as runner
import ptycho_torch.core.precision as precision
from ptycho.config.choices import PRECISIONS
from ptycho.config.config import DataConfig, ModelConfig, TrainingConfig
from ptycho.io import load_dataset
from ptycho_torch.model.checkpoint import load_model
from ptycho_torch.cli import reconstruct_main
from ptycho_torch.config_factory import build_model, data_config_from
from ptycho_torch.engine.training import fit_model, prepare_fit

MC = ModelConfig(N=32, architecture="hybrid", fno_width=8, fno_modes=4, fno_blocks=2,
                 fno_cnn_blocks=1)
MODEL_FLAGS = ["--architecture", "hybrid", "--N", "32", "--fno-width", "8", "--fno-modes", "4",
               "--fno-blocks", "2", "--fno-cnn-blocks", "1", "--batch-size", "8",
               "--device", "cpu"]


def _batch(n=4, N=32):
    g = torch.Generator().manual_seed(1)
    return (torch.rand(n, 1, N, N, generator=g), torch.zeros(n, 1, 1, 2),
            torch.ones(n, 1, 1, 1))


def _model(prec="32", channels_last=False, arch="hybrid"):
    torch.manual_seed(0)
    tc = TrainingConfig(precision=prec, channels_last=channels_last)
    return build_model(replace(MC, architecture=arch), DataConfig(), tc)


def _dtypes_seen(model, types):
    """Record the output dtype of every module of ``types`` (forward hooks)."""
    seen = []
    for m in model.modules():
        if isinstance(m, types):
            m.register_forward_hook(lambda mod, inp, out: seen.append(
                (type(mod).__name__, inp[0].dtype, out.dtype)))
    return seen


def test_bf16_mixed_runs_convolutions_in_bf16_and_keeps_the_physics_in_float32():
    from neuralop.layers.spectral_convolution import SpectralConv

    from ptycho_torch.generators.layers import ComplexOutputHead
    m = _model("bf16-mixed")
    convs = _dtypes_seen(m.generator, (nn.Conv2d, nn.ConvTranspose2d))
    islands = _dtypes_seen(m, (SpectralConv, ComplexOutputHead))
    x, pos, scale = _batch()
    with precision.autocast("bf16-mixed", "cpu"):   # as Lightning's plugin runs a step
        pred = m(x, pos, None, scale)
    assert pred.dtype == torch.float32
    # the encoder / decoder convolutions compute in bfloat16 (the head's 1x1 does not)
    body = [s for s in convs if s[2] == torch.bfloat16]
    assert len(body) == len(convs) - 1, convs
    # the spectral layers see float32 only; the head takes the decoder's bfloat16 and
    # returns complex64
    assert {(name, i, o) for name, i, o in islands} == {
        ("SpectralConv", torch.float32, torch.float32),
        ("ComplexOutputHead", torch.bfloat16, torch.complex64)}


def test_32_runs_everything_in_float32():
    m = _model("32")
    convs = _dtypes_seen(m.generator, (nn.Conv2d, nn.ConvTranspose2d))
    x, pos, scale = _batch()
    m(x, pos, None, scale)
    assert convs and {o for _, _, o in convs} == {torch.float32}


@pytest.mark.parametrize("arch", ["hybrid", "fno", "cnn"])
def test_forward_predict_follows_the_model_precision(arch):
    """Prediction under the training precision: complex64 either way, bf16 close to but not
    equal to float32, and set_precision('32') gives the float32 model's patches exactly."""
    x, pos, scale = _batch()
    with torch.no_grad():
        ref = _model("32", arch=arch).forward_predict(x, pos, None, scale)
        m = _model("bf16-mixed", arch=arch)
        low = m.forward_predict(x, pos, None, scale)
        assert low.dtype == torch.complex64
        rel = float((low - ref).abs().max() / ref.abs().max())
        assert 1e-5 < rel < 5e-2, rel
        m.set_precision("32")
        assert torch.equal(m.forward_predict(x, pos, None, scale), ref)


def test_channels_last_orders_the_conv_weights_and_keeps_the_numbers():
    m, ref = _model("32", channels_last=True), _model("32")
    convs = [mod for mod in m.generator.modules() if isinstance(mod, nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last)
                         and c.weight.stride(1) == 1 for c in convs if c.weight.shape[1] > 1)
    spectral = [p for p in m.generator.spectral_layers[0].parameters() if p.is_complex()]
    assert spectral and all(p.is_contiguous() for p in spectral)  # left as they are
    x, pos, scale = _batch()
    with torch.no_grad():
        a, b = m.forward_predict(x, pos, None, scale), ref.forward_predict(x, pos, None, scale)
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
    m.load_state_dict(ref.state_dict())            # a load keeps the memory order
    assert convs[1].weight.is_contiguous(memory_format=torch.channels_last)


def test_a_bf16_mixed_training_reruns_bit_for_bit_and_differs_from_32(tmp_path, tiny_paths):
    train = load_dataset(tiny_paths.train)
    dc = data_config_from(train)

    def fit(name, prec):
        tc = TrainingConfig(epochs=1, batch_size=8, seed=3, val_fraction=0.2, max_steps=6,
                            precision=prec, channels_last=prec != "32")
        return fit_model(MC, tc, dc, train, tmp_path / name, progress_bar=False).model
    a, b, c = fit("a", "bf16-mixed"), fit("b", "bf16-mixed"), fit("c", "32")
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert all(sa[k].dtype == sc[k].dtype for k in sa)     # the weights stay float32


def test_the_trainer_gets_lightnings_precision_plugin(tmp_path, tiny_paths):
    train = load_dataset(tiny_paths.train)
    tc = TrainingConfig(epochs=1, batch_size=8, precision="bf16-mixed")
    p = prepare_fit(MC, tc, data_config_from(train), train, tmp_path, progress_bar=False)
    assert p.trainer.precision == "bf16-mixed"
    from lightning.pytorch.plugins.precision import MixedPrecision
    assert isinstance(p.trainer.precision_plugin, MixedPrecision)


@pytest.mark.parametrize("name", PRECISIONS)
def test_every_precision_is_a_lightning_precision_and_an_autocast_region(name):
    import lightning as L
    trainer = L.Trainer(precision=name, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False)
    assert trainer.precision == ("32-true" if name == "32" else name)
    assert precision.autocast(name, "cpu").fast_dtype == torch.bfloat16
    assert precision.autocast(name, "cpu")._enabled == (name == "bf16-mixed")


def test_precision_is_checked_against_the_machine(monkeypatch):
    precision.check_precision("bf16-mixed", "cpu") if precision.bf16_supported("cpu") else None
    monkeypatch.setattr(precision, "bf16_supported", lambda device_type: False)
    precision.check_precision("32", "cpu")
    with pytest.raises(ValueError) as err:
        precision.check_precision("bf16-mixed", "cpu")
    assert str(err.value) == ("precision='bf16-mixed' needs bfloat16 arithmetic, which this "
                              "CPU lacks (allowed here: '32')")


def test_a_study_without_bf16_is_refused_in_one_line(monkeypatch, tiny_paths, tmp_path,
                                                     capsys):
    monkeypatch.setattr(precision, "bf16_supported", lambda device_type: False)
    out = tmp_path / "out"
    code = runner.main([*MODEL_FLAGS, "--precision", "bf16-mixed", "--epochs", "1",
                        "--train-npz", str(tiny_paths.train), "--test-npz", str(tiny_paths.test),
                        "--output-dir", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and lines == [
        "error: precision='bf16-mixed' needs bfloat16 arithmetic, which this CPU lacks "
        "(allowed here: '32') [flag --precision]"]
    assert not out.exists()


def test_the_precision_is_recorded_and_reconstruct_can_override_it(monkeypatch, tiny_paths,
                                                                   tmp_path):
    monkeypatch.setattr(precision, "bf16_supported", lambda device_type: True)
    out = tmp_path / "study"
    assert runner.main([*MODEL_FLAGS, "--precision", "bf16-mixed", "--channels-last",
                        "--max-steps", "4", "--epochs", "1",
                        "--train-npz", str(tiny_paths.train), "--test-npz", str(tiny_paths.test),
                        "--output-dir", str(out)]) == 0
    run = out / "runs" / "pinn_hybrid"
    assert json.loads((run / "metrics.json").read_text())["precision"] == "bf16-mixed"
    model = load_model(run / "model.ckpt", "cpu")
    assert model.precision == "bf16-mixed" and model.training_config.channels_last
    for flag, expected in ((None, "bf16-mixed"), ("32", "32")):
        target = tmp_path / f"rec_{flag}"
        extra = ["--precision", flag] if flag else []
        assert reconstruct_main(["--checkpoint", str(run / "model.ckpt"), "--data",
                                 str(tiny_paths.test), "--output-dir", str(target),
                                 "--device", "cpu", *extra]) == 0
        assert json.loads((target / "metrics.json").read_text())["precision"] == expected
