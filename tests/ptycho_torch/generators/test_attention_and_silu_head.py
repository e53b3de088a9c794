"""Generator options: CBAM encoder attention (``encoder_attention``) and the silu amplitude
head (``generator_output_mode='amp_silu_phase'``), checked against independent NumPy
computations."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from ptycho.config.config import DataConfig, ModelConfig
from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import ConfigError
from ptycho_torch.generators import build_generator, count_parameters
from ptycho_torch.generators.attention import CBAM, ChannelGate, SpatialGate
from ptycho_torch.generators.layers import ComplexOutputHead
from ptycho_torch.model import PtychoPINN_Lightning

SMALL = dict(N=32, n_filters_scale=1, fno_modes=6, fno_width=8, fno_blocks=2, fno_cnn_blocks=1)


def _np_sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


# ------------------------------------------------------------------------ CBAM layer
def test_cbam_keeps_the_shape_and_its_gates_lie_in_0_1():
    torch.manual_seed(0)
    block = CBAM(32)
    x = 3.0 * torch.randn(2, 32, 8, 8)
    with torch.no_grad():
        y = block(x)
        g_c = block.channel.gate(x)
        g_s = block.spatial.gate(x * g_c)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert g_c.shape == (2, 32, 1, 1) and g_s.shape == (2, 1, 8, 8)
    for g in (g_c, g_s):
        assert float(g.min()) > 0.0 and float(g.max()) < 1.0
        assert float(g.std()) > 1e-3  # input dependent, not a constant
    # channel gate first, then the spatial gate of the channel-gated features
    torch.testing.assert_close(y, x * g_c * g_s)
    assert block.channel.mlp[0].out_features == 2           # reduction 16: 32 -> 2
    assert block.spatial.conv.kernel_size == (7, 7) and block.spatial.conv.bias is None


def test_channel_gate_matches_a_hand_computation():
    torch.manual_seed(1)
    gate = ChannelGate(4, reduction=2)
    x = torch.randn(2, 4, 3, 5)
    w1, b1 = _np(gate.mlp[0].weight), _np(gate.mlp[0].bias)
    w2, b2 = _np(gate.mlp[2].weight), _np(gate.mlp[2].bias)
    xn = _np(x)

    def mlp(v):  # v (4,)
        return w2 @ np.maximum(w1 @ v + b1, 0.0) + b2

    expected = np.stack([_np_sigmoid(mlp(xs.mean(axis=(1, 2))) + mlp(xs.max(axis=(1, 2))))
                         for xs in xn])
    np.testing.assert_allclose(_np(gate.gate(x))[:, :, 0, 0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(gate(x)), xn * expected[:, :, None, None], rtol=1e-5, atol=1e-6)


def test_spatial_gate_matches_a_hand_computation():
    torch.manual_seed(2)
    gate = SpatialGate(kernel_size=3)
    x = torch.randn(1, 5, 6, 6)
    w = _np(gate.conv.weight)[0]  # (2, 3, 3): input maps (mean, max)
    xn = _np(x)[0]
    logits = sum(correlate2d(m, k, mode="same", boundary="fill")
                 for m, k in zip((xn.mean(axis=0), xn.max(axis=0)), w))
    np.testing.assert_allclose(_np(gate.gate(x))[0, 0], _np_sigmoid(logits), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ CNN with CBAM
def _cbam_params(ch: int) -> int:
    hidden = max(1, ch // 16)
    return (ch * hidden + hidden) + (hidden * ch + ch) + 2 * 7 * 7


@pytest.mark.parametrize("gridsize", (1, 2))
def test_cnn_with_cbam_maps_float_to_complex64_and_adds_the_cbam_parameters(gridsize):
    torch.manual_seed(3)
    plain = build_generator(ModelConfig(architecture="cnn", gridsize=gridsize, **SMALL))
    cfg = ModelConfig(architecture="cnn", gridsize=gridsize, encoder_attention="cbam", **SMALL)
    model = build_generator(cfg)
    assert count_parameters(model) == count_parameters(plain) + sum(
        _cbam_params(f) for f in model.filters)
    kinds = [type(m).__name__ for m in model.encoder]
    assert kinds == ["Conv2d", "ReLU", "Conv2d", "ReLU", "CBAM", "MaxPool2d"] * 3
    x = torch.rand(3, cfg.channels, cfg.N, cfg.N)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (3, cfg.channels, cfg.N, cfg.N) and y.dtype == torch.complex64
    assert torch.isfinite(torch.view_as_real(y)).all()
    assert 0.25 < float(y.abs().mean()) < 1.0   # the head still starts near 0.5 exp(0j)


def test_plain_cnn_keeps_its_module_names_so_old_checkpoints_load():
    old = ModelConfig(architecture="cnn", **SMALL).to_dict()
    del old["encoder_attention"]                 # a config saved before the field existed
    cfg = ModelConfig.from_dict(old)
    assert cfg.encoder_attention == "none"
    keys = {k for k in build_generator(cfg).state_dict() if k.startswith("encoder.")}
    assert keys == {f"encoder.{i}.{p}" for i in (0, 2, 5, 7, 10, 12) for p in ("weight", "bias")}


@pytest.mark.parametrize("arch", ("fno", "hybrid"))
def test_cbam_is_refused_for_the_spectral_architectures(arch):
    with pytest.raises(ConfigError) as exc:
        ModelConfig(architecture=arch, encoder_attention="cbam", **SMALL)
    assert str(exc.value) == (f"ModelConfig.encoder_attention='cbam' needs architecture='cnn' "
                              f"(allowed with architecture='{arch}': 'none')")
    assert exc.value.field == "encoder_attention"
    with pytest.raises(ConfigError, match=r"^ModelConfig.encoder_attention='se' is not allowed "
                                          r"\(choose one of: 'none', 'cbam'\)$"):
        ModelConfig(architecture="cnn", encoder_attention="se")
    # the study's default architecture is hybrid: the flat view refuses it the same way
    with pytest.raises(ConfigError, match=r"architecture='hybrid': 'none'"):
        StudyConfig().replace(encoder_attention="cbam")


# --------------------------------------------------------------- silu amplitude head
def test_silu_head_reads_amplitude_silu_and_phase_pi_tanh():
    torch.manual_seed(4)
    head = ComplexOutputHead(3, 2, "amp_silu_phase")
    with torch.no_grad():
        head.proj.weight.normal_(0.0, 2.0)   # logits of both signs, beyond silu's minimum
    h = torch.randn(2, 3, 5, 5)
    with torch.no_grad():
        y = head(h)
    w, b = _np(head.proj.weight)[:, :, 0, 0], _np(head.proj.bias)
    maps = np.einsum("oi,bihw->bohw", w, _np(h)) + b[None, :, None, None]
    a, p = maps[:, 0::2], maps[:, 1::2]          # per patch: (amplitude, phase) logits
    amp, phase = a * _np_sigmoid(a), math.pi * np.tanh(p)
    assert (amp < 0).any() and (amp > 1).any()
    np.testing.assert_allclose(y.detach().numpy(), amp * np.exp(1j * phase), rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(_np(y.abs()), np.abs(amp), rtol=2e-5, atol=2e-6)
    pos = amp > 1e-3
    np.testing.assert_allclose(_np(y.angle())[pos], phase[pos], rtol=1e-4, atol=1e-4)
    assert float(y.abs().min()) >= 0 and np.abs(amp).max() > 1.5   # unbounded above (no amp_max)


@pytest.mark.parametrize("amp", (0.37, 3.0, 250.0))
@pytest.mark.parametrize("arch", ("cnn", "fno", "hybrid"))
def test_silu_head_starts_at_the_given_amplitude(arch, amp):
    g = build_generator(ModelConfig(architecture=arch, generator_output_mode="amp_silu_phase",
                                    **SMALL))
    with torch.no_grad():
        y0 = g.head(torch.zeros(1, g.head.proj.in_channels, 4, 4))
    torch.testing.assert_close(y0, torch.full_like(y0, 0.5))   # silu^-1(0.5) at construction
    g.set_initial_amplitude(amp)
    with torch.no_grad():
        y = g.head(torch.zeros(1, g.head.proj.in_channels, 4, 4))
    torch.testing.assert_close(y, torch.full_like(y, amp), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ one training step
def test_a_training_step_with_cbam_and_silu_reaches_the_cbam_weights():
    torch.manual_seed(5)
    cfg = StudyConfig().replace(architecture="cnn", encoder_attention="cbam",
                                generator_output_mode="amp_silu_phase", loss="poisson", **SMALL)
    module = PtychoPINN_Lightning(cfg.model, DataConfig(photon_scale=30.0), cfg.training)
    x = torch.rand(4, 1, 32, 32) + 0.1
    batch = (x, torch.zeros(4, 1, 1, 2), torch.ones(4, 1, 1, 1))
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer
        loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)
    loss.backward()
    cbam = {n: p for n, p in module.generator.named_parameters() if "encoder" in n and
            ("channel" in n or "spatial" in n)}
    assert len(cbam) == 3 * 5       # per level: two Linear (weight, bias) + the spatial conv
    before = {n: p.detach().clone() for n, p in cbam.items()}
    for n, p in cbam.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
        assert float(p.grad.abs().sum()) > 0, n
    opt.step()
    assert all(not torch.equal(before[n], p) for n, p in cbam.items())
