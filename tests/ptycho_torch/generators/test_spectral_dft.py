"""The DFT-product spectral convolution against neuraloperator's own FFT forward, and the
channels-last generator against the channels-first one, values and gradients."""
import pytest
import torch
from neuralop.layers.spectral_convolution import SpectralConv
from torch import nn

from ptycho.config.study_config import StudyConfig
from ptycho_torch.generators import build_generator
from ptycho_torch.generators.channels_last import channels_last_grad, to_channels_last
from ptycho_torch.generators.layers import SpectralBlock
from ptycho_torch.generators.spectral_dft import spectral_conv_dft, uses_dft_form

CL = torch.channels_last


def _rel(a, b):
    return float((a - b).detach().abs().max() / b.detach().abs().max())


@pytest.mark.parametrize("c_in,c_out,shape,modes", [
    (8, 8, (64, 64), (12, 12)),     # the quick preset's level 0
    (16, 16, (32, 32), (12, 12)),
    (6, 4, (16, 16), (7, 16)),      # odd row modes; the Nyquist column is kept
    (3, 5, (12, 20), (6, 10)),      # not square
])
def test_dft_products_give_neuraloperators_values_and_gradients(c_in, c_out, shape, modes):
    torch.manual_seed(0)
    conv = SpectralConv(c_in, c_out, n_modes=modes)
    x = torch.randn(3, c_in, *shape)
    assert uses_dft_form(conv, x)
    x_ref = x.clone().requires_grad_()
    x_dft = x.clone().contiguous(memory_format=CL).requires_grad_()
    ref, got = conv(x_ref), spectral_conv_dft(conv, x_dft)
    assert got.shape == ref.shape and got.is_contiguous(memory_format=CL)
    assert _rel(got, ref) < 2e-6
    g = torch.randn_like(ref)
    grads_ref = torch.autograd.grad(ref, [x_ref, *conv.parameters()], g)
    grads_dft = torch.autograd.grad(got, [x_dft, *conv.parameters()], g)
    for a, b in zip(grads_dft, grads_ref):
        assert _rel(a, b) < 2e-6


def test_layers_it_cannot_evaluate_keep_neuraloperators_forward():
    x = torch.randn(2, 4, 16, 16)
    assert not uses_dft_form(SpectralConv(4, 4, n_modes=(6, 6), separable=True), x)
    assert not uses_dft_form(SpectralConv(4, 4, n_modes=(6, 6), complex_data=True), x)
    assert not uses_dft_form(SpectralConv(4, 4, n_modes=(6, 6), fft_norm="ortho"), x)
    assert not uses_dft_form(SpectralConv(4, 4, n_modes=(20, 20)), x)   # more modes than rows
    torch.manual_seed(1)
    block = to_channels_last(SpectralBlock(4, (20, 20)))                # falls back
    plain = SpectralBlock(4, (20, 20))
    plain.load_state_dict(block.state_dict())
    assert _rel(block(x), plain(x)) < 1e-6


@pytest.mark.parametrize("arch,n", [("hybrid", 64), ("fno", 32)])
def test_a_channels_last_generator_trains_on_the_same_numbers_in_channels_last_order(arch, n):
    cfg = StudyConfig().replace(architecture=arch, N=n, fno_width=8).model
    torch.manual_seed(0)
    ref = build_generator(cfg)
    fast = to_channels_last(build_generator(cfg))
    fast.load_state_dict(ref.state_dict())
    x = torch.rand(4, 1, n, n)
    seen = []
    for block in fast.spectral_layers:
        block.register_forward_hook(lambda m, i, o: seen.append(o))  # neuraloperator's, unused
    blocks = [m for m in fast.modules() if isinstance(m, SpectralBlock)]
    outs = []
    for block in blocks:
        block.register_forward_hook(lambda m, i, o: outs.append(o))
    out_ref, out_fast = ref(x), fast(x.contiguous(memory_format=CL))
    assert not seen                      # the DFT form ran, not the module's FFT forward
    assert outs and all(o.is_contiguous(memory_format=CL) for o in outs)
    assert _rel(out_fast, out_ref) < 1e-5
    loss_ref, loss_fast = out_ref.abs().square().mean(), out_fast.abs().square().mean()
    grads_ref = torch.autograd.grad(loss_ref, list(ref.parameters()))
    grads_fast = torch.autograd.grad(loss_fast, list(fast.parameters()))
    assert max(_rel(a, b) for a, b in zip(grads_fast, grads_ref)) < 1e-4


def _grad_into_cat(wrap):
    """The gradient that reaches the first input of a channels-last conv's channel cat."""
    torch.manual_seed(0)
    a, b = (torch.randn(2, 4, 8, 8).contiguous(memory_format=CL) for _ in range(2))
    conv = to_channels_last(nn.Conv2d(8, 3, 3, padding=1))
    seen = []
    h = (a.requires_grad_() * 1.0)
    h.register_hook(seen.append)
    conv(torch.cat([wrap(h), wrap(b)], dim=1)).sum().backward()
    return seen[0]


def test_channels_last_grad_hands_the_gradient_on_in_channels_last_order():
    plain, ordered = _grad_into_cat(lambda t: t), _grad_into_cat(channels_last_grad)
    assert not plain.is_contiguous(memory_format=CL) and not plain.is_contiguous()
    assert ordered.is_contiguous(memory_format=CL) and torch.equal(ordered, plain)
