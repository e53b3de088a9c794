"""--weight-average ema and --gradient-clip-val on a tiny fit: the reconstructed weights are
the exponential moving average of the step weights, and a clipped gradient shrinks Adam's
first step by the ratio eps / |g| predicts."""
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from ptycho.config.config import DataConfig, ModelConfig, TrainingConfig
from ptycho.config.validation import ConfigError
from ptycho_torch.engine.data import input_scale_from
from ptycho_torch.engine.training import fit_model

MC = ModelConfig(N=32, architecture="cnn", n_filters_scale=1)


class _StepWeights(Callback):
    """The generator's float parameters and buffers after every optimizer step (and before the first)."""

    def __init__(self):
        self.steps = []

    @staticmethod
    def _snap(pl_module):
        return {k: v.detach().clone() for k, v in pl_module.state_dict().items()
                if v.is_floating_point()}

    def on_train_start(self, trainer, pl_module):
        self.start = self._snap(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append(self._snap(pl_module))


def _fit(tmp_path, tiny_data, **training):
    train, _ = tiny_data
    tc = TrainingConfig(epochs=1, batch_size=16, max_train_patterns=64, scheduler="none",
                        **training)
    dc = DataConfig(input_scale=input_scale_from(train.diffraction))
    rec = _StepWeights()
    fit = fit_model(MC, tc, dc, train, tmp_path / "work", progress_bar=False,
                    extra_callbacks=[rec])
    return fit, rec


def test_ema_weights_are_the_moving_average_of_the_step_weights(tmp_path, tiny_data):
    decay = 0.6
    fit, rec = _fit(tmp_path, tiny_data, weight_average="ema", ema_decay=decay)
    assert fit.steps_completed == 4 and len(rec.steps) == 4
    final = fit.model.state_dict()
    moved = 0.0
    for k in rec.steps[0]:
        avg = rec.steps[0][k].clone()  # the first update copies the weights
        for w in rec.steps[1:]:
            avg = decay * avg + (1 - decay) * w[k]
        torch.testing.assert_close(final[k], avg, rtol=1e-5, atol=1e-6)
        moved = max(moved, float((final[k] - rec.steps[-1][k]).abs().max()))
    assert moved > 1e-5  # the average differs from the last step's weights
    saved = torch.load(fit.checkpoint, map_location="cpu", weights_only=True)
    for k, v in rec.steps[-1].items():  # final.ckpt holds the average; the last weights beside it
        torch.testing.assert_close(saved["state_dict"][k], final[k])
        torch.testing.assert_close(saved["current_model_state"][k], final[k])


def test_no_average_reconstructs_with_the_last_step_weights(tmp_path, tiny_data):
    fit, rec = _fit(tmp_path, tiny_data)
    final = fit.model.state_dict()
    for k, v in rec.steps[-1].items():
        torch.testing.assert_close(final[k], v, rtol=0, atol=0)


def test_gradient_clipping_shrinks_adams_first_step(tmp_path, tiny_data):
    """Adam's first step is lr * g / (|g| + eps) per element: about lr where |g| >> eps, and
    about lr * |g| / eps once the gradient's norm is clipped to 1e-12 (eps = 1e-8)."""
    def first_step(sub, **clip):
        _, rec = _fit(tmp_path / sub, tiny_data, max_steps=1, **clip)
        return max(float((rec.steps[0][k] - rec.start[k]).abs().max()) for k in rec.start)
    free, clipped = first_step("free"), first_step("clip", gradient_clip_val=1e-12)
    assert free == pytest.approx(1e-3, rel=0.05)  # the learning rate
    assert clipped < 1e-3 * free


@pytest.mark.parametrize("kw, msg", [
    (dict(ema_decay=0.9), "TrainingConfig.ema_decay=0.9 has no effect with weight_average='none' "
                          "(it sets the decay of weight_average='ema')"),
    (dict(weight_average="ema", ema_decay=1.0), "TrainingConfig.ema_decay=1.0 is out of range "
                                                "(allowed: > 0 and <= 0.99999)"),
    (dict(gradient_clip_val=-1.0), "TrainingConfig.gradient_clip_val=-1.0 is out of range "
                                   "(allowed: 0..1e+06)"),
    (dict(weight_average="swa"), "TrainingConfig.weight_average='swa' is not allowed "
                                 "(choose one of: 'none', 'ema')"),
])
def test_refusals(kw, msg):
    with pytest.raises(ConfigError) as e:
        TrainingConfig(**kw)
    assert str(e.value).startswith(msg)
