"""fno_* hyperparameters set through the study config reach the generators."""
import pytest
import torch
from neuralop.layers.spectral_convolution import SpectralConv

from ptycho.config.config import DataConfig
from ptycho.config.study_config import StudyConfig
from ptycho_torch.generators import build_generator
from ptycho_torch.model import PtychoPINN_Lightning

NON_DEFAULT = {"fno_modes": 6, "fno_width": 24, "fno_blocks": 3, "fno_cnn_blocks": 1}


def study_config(overrides):
    """The study config with flat ``overrides``, as the runner builds it."""
    return StudyConfig().replace(**overrides)


def _spectral(module):
    return [m for m in module.modules() if isinstance(m, SpectralConv)]


def test_fno_hyperparameters_reach_the_generator():
    p = study_config({"architecture": "fno", "N": 32, **NON_DEFAULT})
    gen = build_generator(p.model)
    spectral = _spectral(gen)
    assert len(spectral) == 3  # fno_blocks, and they are neuraloperator's layers
    assert all(m.in_channels == 24 and m.out_channels == 24 for m in spectral)
    # neuraloperator keeps m modes on the first axis and m//2+1 on the last (rfft)
    assert all(list(m.n_modes) == [6, 6 // 2 + 1] for m in spectral)
    assert len(gen.refiners) == 1


@pytest.mark.parametrize("blocks,cnn_blocks", [(3, 1), (5, 0), (1, 3)])
def test_hybrid_invariants(blocks, cnn_blocks):
    p = study_config({"architecture": "hybrid", "N": 32, "fno_modes": 6,
                                           "fno_width": 12, "fno_blocks": blocks,
                                           "fno_cnn_blocks": cnn_blocks})
    gen = build_generator(p.model)
    spectral = _spectral(gen)
    assert len(spectral) == blocks
    assert len(gen.bottleneck_blocks) == cnn_blocks
    assert gen.widths[0] == 12 and max(gen.widths) <= 4 * 12
    assert spectral[0].in_channels == 12
    # modes never exceed the level's resolution / 2, and the first level uses fno_modes
    assert list(spectral[0].n_modes)[0] == 6


def test_lightning_module_carries_the_same_generator_settings():
    p = study_config({"architecture": "fno", "N": 32, **NON_DEFAULT})
    m = PtychoPINN_Lightning(p.model, DataConfig(), p.training)
    assert len(_spectral(m.generator)) == 3
    assert m.hparams["model_config"]["fno_width"] == 24


@pytest.mark.parametrize("arch", ["cnn", "fno", "hybrid"])
def test_forward_backward_finite(arch):
    torch.manual_seed(0)
    p = study_config({"architecture": arch, "N": 32, **NON_DEFAULT})
    m = PtychoPINN_Lightning(p.model, DataConfig(), p.training)
    x = torch.rand(4, 1, 32, 32)
    amp = m(x, torch.zeros(4, 1, 1, 2), m.probe, torch.ones(4, 1, 1, 1))
    loss = m.loss_fn(amp, x)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    grads = {n: q.grad for n, q in m.named_parameters() if q.requires_grad}
    assert grads and all(g is not None for g in grads.values()), [n for n, g in grads.items() if g is None]
    assert all(torch.isfinite(torch.view_as_real(g) if g.is_complex() else g).all()
               for g in grads.values())
    assert sum(int(g.abs().sum() > 0) for g in grads.values()) >= 0.9 * len(grads)
