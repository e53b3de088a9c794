"""The channels-last forms of the generators' small layers compute the same function as the
plain ones: GELU on the contiguous (B, H, W, C) view, the lifting 1 x 1 convolution as a
float32 product, the decoder's skip cast before its concatenation, and a spectral block's in-place
inference."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ptycho.config.study_config import StudyConfig
from ptycho_torch.core.precision import autocast
from ptycho_torch.generators import build_generator
from ptycho_torch.generators.hybrid import _Up
from ptycho_torch.generators.channels_last import (gelu, lift, module_channels_last,
                                                    to_channels_last)
from ptycho_torch.generators.layers import SpectralBlock, conv3x3

CL = torch.channels_last


def _rel(a, b):
    return float((a - b).detach().abs().max() / b.detach().abs().max())


def test_gelu_of_a_channels_last_tensor_is_torchs_gelu_and_stays_in_that_order():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 16, 16).contiguous(memory_format=CL).requires_grad_()
    ref_x = x.detach().contiguous().requires_grad_()
    got, ref = gelu(x), F.gelu(ref_x)
    assert got.is_contiguous(memory_format=CL) and not got.is_contiguous()
    assert _rel(got, ref) < 1e-6
    g = torch.randn(2, 8, 16, 16).contiguous(memory_format=CL)
    (grad,), (ref_grad,) = torch.autograd.grad(got, x, g), torch.autograd.grad(ref, ref_x, g)
    assert grad.is_contiguous(memory_format=CL)
    assert _rel(grad, ref_grad) < 1e-6
    plain = torch.randn(2, 8, 16, 16)
    assert torch.equal(gelu(plain), F.gelu(plain))     # channels-first: torch's call itself


@pytest.mark.parametrize("in_ch", [1, 4])
def test_the_channels_last_lift_is_the_convolution_in_float32(in_ch):
    torch.manual_seed(0)
    conv = nn.Conv2d(in_ch, 8, 1)
    nn.init.normal_(conv.bias)
    x = torch.rand(3, in_ch, 12, 12)
    ref = conv(x)
    assert torch.equal(lift(conv, x, channels_last=False), ref)
    got = lift(conv, x, channels_last=True)
    assert got.shape == ref.shape and got.dtype == torch.float32
    assert got.is_contiguous(memory_format=CL)
    assert _rel(got, ref) < 1e-6
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(got, list(conv.parameters()), g),
                    torch.autograd.grad(ref, list(conv.parameters()), g)):
        assert _rel(a, b) < 1e-5
    with autocast("bf16-mixed", "cpu"):
        under_autocast = lift(conv, x, channels_last=True)
    assert under_autocast.dtype == torch.float32 and torch.equal(under_autocast, got)


def test_the_decoder_casts_its_skip_to_the_numbers_its_convolution_used_before():
    """Under bf16 autocast, concatenating the bfloat16 upsampled features with a bfloat16
    copy of the float32 skip gives the convolution exactly the numbers it got from the
    float32 concatenation (which autocast rounded to bfloat16), and the same gradients."""
    torch.manual_seed(0)
    up = _Up(16, 8)
    h = torch.randn(2, 16, 8, 8, requires_grad=True)
    skip = torch.randn(2, 8, 16, 16, requires_grad=True)

    def reference(h, skip):
        a = F.gelu(up.up(h))
        a = F.gelu(up.conv1(torch.cat([a, skip], dim=1)))
        return F.gelu(up.conv2(a))

    with autocast("bf16-mixed", "cpu"):
        got, ref = up(h, skip), reference(h, skip)
        assert torch.cat([F.gelu(up.up(h)), skip], dim=1).dtype == torch.float32  # promoted
    assert got.dtype == torch.bfloat16 and torch.equal(got, ref)
    g = torch.randn_like(got)
    params = [h, skip, *up.parameters()]
    for a, b in zip(torch.autograd.grad(got, params, g), torch.autograd.grad(ref, params, g)):
        assert a.dtype == b.dtype and torch.equal(a, b)


def test_module_channels_last_asks_a_convolution_wider_than_one_by_one():
    model = nn.Sequential(nn.Conv2d(1, 8, 1), conv3x3(8, 8))
    assert not module_channels_last(model)
    assert module_channels_last(to_channels_last(model))
    assert not module_channels_last(to_channels_last(nn.Conv2d(8, 8, 1)))  # both orders


@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_a_spectral_block_without_autograd_gives_the_same_bits_in_place(precision, monkeypatch):
    torch.manual_seed(0)
    block = to_channels_last(SpectralBlock(8, (12, 12)))
    with torch.no_grad():
        block.spectral.bias.normal_()          # a bias that is not zero, so it counts
    x = torch.randn(3, 8, 32, 32).contiguous(memory_format=CL)
    before = x.clone()
    with autocast(precision, "cpu"):
        ref = block(x.requires_grad_()).detach()        # autograd: the out-of-place sums
        x = x.detach()
        calls = []
        real = SpectralBlock._forward_in_place
        monkeypatch.setattr(SpectralBlock, "_forward_in_place",
                            lambda self, t: calls.append(1) or real(self, t))
        with torch.inference_mode():
            got = block(x)
        with torch.no_grad():
            got_no_grad = block(x)
        ref_again = block(x.requires_grad_()).detach()
    assert len(calls) == 2                  # inference and no_grad took it; autograd did not
    assert torch.equal(got, ref) and torch.equal(got_no_grad, ref) and torch.equal(ref_again, ref)
    assert got.dtype == torch.float32 and got.is_contiguous(memory_format=CL)
    assert torch.equal(x, before)           # the block's input is left as it was


@pytest.mark.parametrize("arch", ["hybrid", "fno"])
@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_a_channels_last_generator_predicts_the_bits_it_trains_on(arch, precision):
    """Every spectral block of the generator (bfloat16 inputs from the encoder included)
    gives at inference, in place, the bits the autograd path gives."""
    cfg = StudyConfig().replace(architecture=arch, N=32, fno_width=8, fno_modes=8).model
    torch.manual_seed(0)
    gen = to_channels_last(build_generator(cfg))
    for block in gen.modules():
        if isinstance(block, SpectralBlock):
            with torch.no_grad():
                block.spectral.bias.normal_()
    x = torch.rand(3, 1, 32, 32)
    with autocast(precision, "cpu"):
        trained = gen(x).detach()
        with torch.inference_mode():
            predicted = gen(x)
    assert torch.equal(predicted, trained)
