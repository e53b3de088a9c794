"""Generators: shapes, dtypes, gradients, structure, output modes, registry, save/load."""
from __future__ import annotations

import copy
import io
import math
from types import SimpleNamespace

import pytest
import torch
from neuralop.layers.spectral_convolution import SpectralConv

from ptycho.config.config import ModelConfig
from ptycho.config.study_config import StudyConfig
from ptycho_torch.generators import GENERATORS, build_generator, count_parameters
from ptycho_torch.generators.cnn import CNNGenerator
from ptycho_torch.generators.fno import FNOGenerator
from ptycho_torch.generators.hybrid import HybridGenerator, blocks_per_level, level_widths
from ptycho_torch.generators.layers import ComplexOutputHead, upsample_nearest2x

ARCHS = ("cnn", "fno", "hybrid")
SMALL = dict(N=32, fno_modes=6, fno_width=8, fno_blocks=2, fno_cnn_blocks=1, n_filters_scale=1)


def small_config(**kw) -> ModelConfig:
    return ModelConfig(**{**SMALL, **kw})


def _input(cfg, batch=2, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, cfg.channels, cfg.N, cfg.N, generator=g)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


@pytest.mark.parametrize("gridsize", (1, 2))
@pytest.mark.parametrize("mode", ("real_imag", "amp_phase"))
@pytest.mark.parametrize("arch", ARCHS)
def test_forward_backward_shape_dtype_finite(arch, mode, gridsize):
    cfg = small_config(architecture=arch, generator_output_mode=mode, gridsize=gridsize)
    model = build_generator(cfg)
    x = _input(cfg, batch=3)
    y = model(x)
    assert y.shape == (3, cfg.channels, cfg.N, cfg.N)
    assert y.dtype == torch.complex64
    assert torch.isfinite(torch.view_as_real(y)).all()
    # initial amplitude O(0.1-1) (head bias / sigmoid(0) = 0.5)
    assert 0.1 < y.abs().mean().item() < 1.5
    loss = (y.real - 0.3).abs().mean() + (y.imag + 0.2).abs().mean()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert all(torch.isfinite(torch.view_as_real(g) if g.is_complex() else g).all() for g in grads)
    n_nonzero = sum(int(g.abs().sum() > 0) for g in grads)
    assert n_nonzero >= 0.9 * len(grads)
    # every architecture is a (real) function of its input: gradient w.r.t. x is finite, nonzero
    x.requires_grad_(True)
    y = model(x)
    (y.abs() ** 2).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_fno_structure_uses_neuralop_spectral_conv():
    cfg = ModelConfig(N=32, architecture="fno", fno_modes=6, fno_width=24, fno_blocks=3,
                      fno_cnn_blocks=1)
    model = build_generator(cfg)
    assert isinstance(model, FNOGenerator)
    spectral = [m for m in model.modules() if isinstance(m, SpectralConv)]
    assert len(spectral) == 3
    assert [id(m) for m in model.spectral_layers] == [id(m) for m in spectral]
    ref = SpectralConv(24, 24, n_modes=(6, 6))
    for layer in spectral:
        assert layer.in_channels == 24 and layer.out_channels == 24
        assert list(layer.n_modes) == list(ref.n_modes) == [6, 4]  # m, m//2 + 1 (rfft axis)
        assert layer.weight.shape == (24, 24, 6, 4)
        assert layer.weight.tensor.dtype == torch.complex64
    assert len(model.refiners) == 1
    # no positional grid embedding: the lifting conv sees exactly the C input channels
    assert model.lift.in_channels == cfg.channels == 1
    assert model.lift.out_channels == 24


@pytest.mark.parametrize("blocks,cnn_blocks", [(4, 2), (1, 0), (5, 3)])
def test_hybrid_structure(blocks, cnn_blocks):
    cfg = ModelConfig(N=64, architecture="hybrid", fno_modes=12, fno_width=16,
                      fno_blocks=blocks, fno_cnn_blocks=cnn_blocks)
    model = build_generator(cfg)
    assert isinstance(model, HybridGenerator)
    spectral = [m for m in model.modules() if isinstance(m, SpectralConv)]
    assert len(spectral) == len(model.spectral_layers) == blocks
    assert len(model.bottleneck_blocks) == cnn_blocks
    assert model.lift.in_channels == 1
    assert model.widths == [16, 32, 64]
    assert model.spectral_layers[0].in_channels == 16  # first level width == fno_width
    assert model.modes == [12, 12, 8]                   # min(fno_modes, res // 2)
    assert sum(model.blocks_per_level) == blocks
    y = model(_input(cfg, batch=1))
    assert y.shape == (1, 1, 64, 64)


def test_hybrid_level_rules():
    assert blocks_per_level(4, 2) == [2, 1, 1]
    assert blocks_per_level(1, 2) == [1, 0, 0]
    assert blocks_per_level(7, 2) == [3, 2, 2]
    assert level_widths(32, 2) == [32, 64, 128]
    assert level_widths(128, 2) == [128, 256, 256]   # capped at 256
    assert level_widths(512, 2) == [512, 512, 512]   # never narrower than fno_width
    m16 = HybridGenerator(ModelConfig(N=16, fno_modes=8, fno_width=8, fno_blocks=2,
                                      fno_cnn_blocks=1))
    assert m16.levels == 1 and m16.modes == [8, 4]
    assert m16(torch.rand(2, 1, 16, 16)).shape == (2, 1, 16, 16)


def test_cnn_structure():
    model = build_generator(ModelConfig(N=32, architecture="cnn", n_filters_scale=2))
    assert isinstance(model, CNNGenerator)
    assert model.filters == [32, 64, 128]
    enc_convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    dec_convs = [m for m in model.decoder if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in enc_convs] == [32, 32, 64, 64, 128, 128]
    assert [c.out_channels for c in dec_convs] == [128, 128, 64, 64, 32, 32]
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.encoder) == 3


@pytest.mark.parametrize("arch", ARCHS)
def test_amp_phase_ranges(arch):
    cfg = small_config(architecture=arch, generator_output_mode="amp_phase")
    model = build_generator(cfg)
    with torch.no_grad():
        # push the head to extreme logits too: the ranges must still hold
        model.head.proj.weight.mul_(50.0)
        y = model(5.0 * _input(cfg, batch=4))
    amp, phase = y.abs(), y.angle()
    assert amp.min() > 0 and amp.max() <= 1.0
    assert phase.min() >= -math.pi and phase.max() <= math.pi
    assert phase.std() > 0.1  # not a constant


def test_head_reads_channel_pairs_per_patch():
    head = ComplexOutputHead(3, 2, "real_imag")
    with torch.no_grad():
        head.proj.weight.zero_()
        head.proj.bias.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    y = head(torch.zeros(1, 3, 4, 4))
    assert torch.equal(y[0, :, 0, 0], torch.tensor([1 + 2j, 3 + 4j], dtype=torch.complex64))
    head = ComplexOutputHead(3, 1, "amp_phase")
    with torch.no_grad():
        head.proj.weight.zero_()
        head.proj.bias.copy_(torch.tensor([0.0, 1.0]))
    y = head(torch.zeros(1, 3, 2, 2))
    torch.testing.assert_close(y.abs(), torch.full((1, 1, 2, 2), 0.5))
    torch.testing.assert_close(y.angle(), torch.full((1, 1, 2, 2), math.pi * math.tanh(1.0)))
    with pytest.raises(ValueError, match=r"generator_output_mode='abs' is not allowed"):
        ComplexOutputHead(3, 1, "abs")


def test_initial_output_is_near_uniform_half():
    for mode in ("real_imag", "amp_phase"):
        for arch in ARCHS:
            cfg = small_config(architecture=arch, generator_output_mode=mode)
            with torch.no_grad():
                y = build_generator(cfg)(_input(cfg, batch=2))
            assert 0.25 < y.abs().mean().item() < 1.0, (arch, mode)
            assert y.angle().abs().mean().item() < 0.5, (arch, mode)


def test_unknown_architecture_error():
    ns = SimpleNamespace(**{**ModelConfig().to_dict(), "architecture": "unet"})
    with pytest.raises(ValueError) as exc:
        build_generator(ns)
    assert str(exc.value) == "unknown architecture 'unet' (choose one of: 'cnn', 'fno', 'hybrid')"
    assert set(GENERATORS) == {"cnn", "fno", "hybrid"}
    with pytest.raises(ValueError, match="architecture"):
        ModelConfig(architecture="unet")  # the dataclass refuses it too


def test_build_from_namespace_dict_and_study_config():
    ns = SimpleNamespace(**small_config(architecture="fno").to_dict())
    assert isinstance(build_generator(ns), FNOGenerator)
    assert isinstance(build_generator(small_config(architecture="cnn").to_dict()), CNNGenerator)
    study = StudyConfig().replace(architecture="fno", fno_width=16, fno_blocks=2, fno_modes=8)
    model = build_generator(study.model)
    assert isinstance(model, FNOGenerator)
    assert len(model.spectral_layers) == 2 and model.lift.out_channels == 16


def test_input_validation():
    model = build_generator(small_config(architecture="fno"))
    with pytest.raises(ValueError, match=r"input shape=\(2, 4, 32, 32\) is not allowed "
                                         r"\(allowed: \(B, 1, 32, 32\)\)"):
        model(torch.rand(2, 4, 32, 32))
    # the project's prefix and the facts (torch spells the dtypes)
    with pytest.raises(ValueError, match=r"^FNOGenerator input dtype=\S*float64 is not allowed "
                                         r"\(allowed: \S*float32\)$"):
        model(torch.rand(2, 1, 32, 32, dtype=torch.float64))


def test_fno_commutes_with_circular_shift():
    cfg = small_config(architecture="fno", fno_blocks=3, fno_cnn_blocks=2)
    model = build_generator(cfg).eval()
    x = _input(cfg, batch=2)
    with torch.no_grad():
        y = model(x)
        y_shift = model(torch.roll(x, shifts=(5, -3), dims=(-2, -1)))
    torch.testing.assert_close(y_shift, torch.roll(y, shifts=(5, -3), dims=(-2, -1)),
                               atol=2e-5, rtol=1e-4)
    # and it is not trivially shift-invariant (output actually moves with the input)
    assert (y_shift - y).abs().max() > 1e-3


@pytest.mark.parametrize("arch", ARCHS)
def test_state_dict_round_trip(arch):
    cfg = small_config(architecture=arch, gridsize=2)
    model = build_generator(cfg).eval()
    state = model.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())  # no neuralop _metadata entry
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    other = build_generator(cfg).eval()
    other.load_state_dict(loaded)
    x = _input(cfg, batch=2)
    with torch.no_grad():
        assert torch.equal(model(x), other(x))
    clone = copy.deepcopy(model)  # Lightning / EMA-style copies must work
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))


def _forward_backward(arch, seed):
    """Output and parameter gradients of a freshly built ``arch`` generator (seeded)."""
    torch.manual_seed(seed)
    cfg = small_config(architecture=arch)
    model = build_generator(cfg)
    y = model(_input(cfg))
    y.abs().sum().backward()
    return y.detach(), {n: p.grad for n, p in model.named_parameters()}


def test_deterministic_algorithms_cpu():
    """Under ``torch.use_deterministic_algorithms(True)`` (strict: an op without a
    deterministic implementation raises) every generator runs forward and backward, every
    parameter gets a gradient, and two runs from one seed are bit-identical."""
    prev = (torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True)
    try:
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
        for arch in ARCHS:
            y1, g1 = _forward_backward(arch, seed=5)
            y2, g2 = _forward_backward(arch, seed=5)
            assert torch.equal(y1, y2), arch
            assert g1.keys() == g2.keys()
            assert all(g is not None for g in g1.values()), arch
            assert all(torch.equal(g1[k], g2[k]) for k in g1), arch
            # the comparison can fail: another seed gives other weights, other gradients
            _, g3 = _forward_backward(arch, seed=6)
            assert not all(torch.equal(g1[k], g3[k]) for k in g1), arch
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
    assert torch.are_deterministic_algorithms_enabled() == prev[0]


def test_upsample_nearest2x_matches_repeat():
    x = torch.arange(2 * 3 * 2 * 3, dtype=torch.float32).reshape(2, 3, 2, 3)
    expected = x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    assert torch.equal(upsample_nearest2x(x), expected)


def test_parameter_counts_at_defaults():
    counts = {a: count_parameters(build_generator(ModelConfig(architecture=a))) for a in ARCHS}
    # complex spectral weights count twice (neuraloperator's convention)
    fno = build_generator(ModelConfig(architecture="fno"))
    n_complex = sum(p.numel() for p in fno.parameters() if p.is_complex())
    assert n_complex == 4 * 32 * 32 * 12 * 7
    assert counts["fno"] == sum(p.numel() for p in fno.parameters()) + n_complex
    assert 0.5e6 < counts["cnn"] < 1.5e6
    assert 0.5e6 < counts["fno"] < 1.5e6
    assert 1.0e6 < counts["hybrid"] < 4.0e6


@pytest.mark.parametrize("mode,amp", [("real_imag", 2.5), ("amp_phase", 0.8), ("amp_phase", 3.0)])
def test_head_set_initial_amplitude(mode, amp):
    head = ComplexOutputHead(4, 2, mode)
    head.set_initial_amplitude(amp)
    y = head(torch.zeros(1, 4, 3, 3))
    torch.testing.assert_close(y, torch.full((1, 2, 3, 3), amp, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"amplitude=0.0 is out of range"):
        head.set_initial_amplitude(0.0)
    if mode == "amp_phase":
        # the amplitude range is (0, 2 * amp): a bright object is representable
        assert float(head.amp_max) == pytest.approx(2 * amp)
        y = head(torch.full((1, 4, 3, 3), 100.0))
        assert float(y.abs().max()) < 2 * amp + 1e-5
