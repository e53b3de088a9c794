"""Defects 5.6 (host syncs of the overlap constraint), 5.7 (forward_predict's probe),
5.8 (the generator interface) and 5.12 (OOM log, patterns trained), each as behaviour."""
import logging
import re

import numpy as np
import pytest
import torch

from ptycho.config.config import DataConfig, ModelConfig, TrainingConfig
from ptycho_torch.core import overlap
from ptycho_torch.config_factory import build_model
from ptycho_torch.generators import GENERATORS, Generator, build_generator
from ptycho_torch.engine.inference import predict_patches

SMALL = dict(N=32, fno_width=8, fno_modes=4, fno_blocks=1, fno_cnn_blocks=1, n_filters_scale=1)


# ------------------------------------------------------------------ 5.6: no host syncs
def _forbid_host_syncs(monkeypatch):
    """Any tensor -> Python scalar conversion (what forces a device sync) raises."""
    def boom(*_a, **_k):
        raise AssertionError("host synchronisation")
    for name in ("__bool__", "__int__", "__index__", "__float__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, boom)


def test_overlap_constraint_with_the_scan_canvas_never_syncs(tiny_data_g2, monkeypatch):
    train, _ = tiny_data_g2
    model = build_model(ModelConfig(architecture="cnn", gridsize=2, **SMALL), DataConfig(),
                        TrainingConfig(), train)
    M = model.overlap_region_size
    assert M == overlap.overlap_region_size(train.coords_nominal, 32) > 32
    x = torch.from_numpy(train.diffraction[:5])
    pos = torch.from_numpy(train.coords_nominal[:5])
    scale = torch.ones(5, 1, 1, 1)
    with torch.no_grad():
        reference = overlap.apply_overlap_constraint(model.generator(x), pos)  # per batch
    _forbid_host_syncs(monkeypatch)
    obj = model._object_patches(x, pos, scale)
    amp = model(x, pos, None, scale)
    loss = model.loss_fn(amp, x, mask=model.valid_mask)
    loss.backward()
    monkeypatch.undo()
    torch.testing.assert_close(obj.detach(), reference, rtol=0, atol=0)
    with pytest.raises(AssertionError, match="host synchronisation"):
        _forbid_host_syncs(monkeypatch)
        overlap.apply_overlap_constraint(obj.detach(), pos)  # the per-batch path does sync


def test_overlap_region_size_rules():
    assert overlap.overlap_region_size(np.zeros((4, 1, 1, 2)), 32) == 0
    assert overlap.overlap_region_size(np.array([[[[1.4, -2.5]]]]), 32) == 32 + 2 * 2
    assert overlap.overlap_region_size(torch.tensor([[[[3.5, 0.0]]]]), 16) == 16 + 2 * 4
    with pytest.raises(ValueError, match=r"^overlap_region_size: positions hold non-finite"):
        overlap.overlap_region_size(np.array([[[[np.nan, 0.0]]]]), 16)
    # 0: the constraint is the identity (gridsize 1 / no geometry), no canvas at all
    p = torch.randn(2, 4, 8, 8, dtype=torch.complex64)
    assert overlap.apply_overlap_constraint(p, torch.zeros(2, 4, 1, 2), region_size=0) is p


# --------------------------------------------------------------- 5.7: the unused probe
def _cnn_model():
    return build_model(ModelConfig(architecture="cnn", **SMALL), DataConfig(), TrainingConfig())


def test_forward_predict_checks_the_probe_shape_and_ignores_its_values():
    model = _cnn_model().eval()
    x, pos, s = torch.rand(3, 1, 32, 32), torch.zeros(3, 1, 1, 2), torch.ones(3, 1, 1, 1)
    with torch.no_grad():
        a = model.forward_predict(x, pos, torch.ones(32, 32, dtype=torch.complex64), s)
        b = model.forward_predict(x, pos, 7 * torch.ones(2, 32, 32, dtype=torch.complex64), s)
        c = model.forward_predict(x, pos, None, s)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, c, rtol=0, atol=0)
    with pytest.raises(ValueError, match=re.escape(
            "forward_predict: probe has shape (16, 16) (allowed: (32, 32) or (modes, 32, 32), "
            "or None; it is not used)")):
        model.forward_predict(x, pos, torch.ones(16, 16, dtype=torch.complex64), s)


class _MetaSpy(torch.nn.Module):
    """A model 'on another device' (meta): the inputs move there, the probe must not."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.empty(1, device="meta"))
        self.probes = []

    def forward_predict(self, x, positions, probe, input_scale_factor):
        assert x.device.type == "meta"
        self.probes.append(probe)
        return torch.zeros(x.shape, dtype=torch.complex64)


def test_inference_hands_over_the_cpu_probe_without_copying_it():
    spy = _MetaSpy()
    probe = np.ones((8, 8), np.complex64)
    predict_patches(spy, {"diffraction": np.ones((5, 1, 8, 8), np.float32),
                          "probeGuess": probe}, 2)
    assert len(spy.probes) == 3
    assert all(p.device.type == "cpu" for p in spy.probes)
    assert all(p is spy.probes[0] for p in spy.probes)  # one tensor, not a copy per batch


def test_inference_sets_the_scan_geometry_and_restores_it(tiny_data_g2):
    train, test = tiny_data_g2
    model = build_model(ModelConfig(architecture="cnn", gridsize=2, **SMALL), DataConfig(),
                        TrainingConfig(), train)
    before = model.overlap_region_size
    seen = []
    original = model.forward_predict

    def spy(*a):
        seen.append(model.overlap_region_size)
        return original(*a)
    model.forward_predict = spy
    out = predict_patches(model, test, 7)
    assert set(seen) == {overlap.overlap_region_size(test.coords_nominal, 32)}
    assert model.overlap_region_size == before
    model.forward_predict = original
    model.overlap_region_size = None  # the per-batch path gives the same patches
    np.testing.assert_array_equal(out, predict_patches(model, test, 7))


# ------------------------------------------------------------ 5.8: generator interface
@pytest.mark.parametrize("architecture", sorted(GENERATORS))
@pytest.mark.parametrize("mode", ["real_imag", "amp_phase"])
def test_every_generator_sets_its_initial_amplitude(architecture, mode):
    g = build_generator(ModelConfig(architecture=architecture, generator_output_mode=mode,
                                    **SMALL))
    assert isinstance(g, Generator)
    g.set_initial_amplitude(0.37)
    with torch.no_grad():
        head = g.head(torch.zeros(1, g.head.proj.in_channels, 4, 4))
    torch.testing.assert_close(head, torch.full_like(head, 0.37), rtol=1e-6, atol=1e-6)


def test_training_starts_the_generator_through_its_interface(tiny_data, tmp_path, monkeypatch):
    from ptycho_torch.engine.data import object_amplitude_estimate, split_indices
    from ptycho_torch.engine.training import fit_model
    train, _ = tiny_data
    calls = []
    monkeypatch.setattr(Generator, "set_initial_amplitude",
                        lambda self, a: calls.append((type(self).__name__, float(a))))
    tc = TrainingConfig(epochs=1, batch_size=16, max_steps=1)
    fit_model(ModelConfig(architecture="cnn", **SMALL), tc,
              DataConfig(input_scale=1.0), train, tmp_path, progress_bar=False)
    split = split_indices(train.n, tc.val_fraction, tc.seed, tc.max_train_patterns)
    expected = object_amplitude_estimate(train.diffraction[split.train_idx[:2048]], train.probe)
    assert calls == [("CNNGenerator", pytest.approx(expected))]


# --------------------------------------------------- 5.12: OOM log and patterns trained
def test_the_oom_log_names_the_batch_size_that_failed(caplog):
    class OOM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward_predict(self, x, *a):
            if x.shape[0] > 2:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
            return x.to(torch.complex64)
    with caplog.at_level(logging.WARNING, logger="ptycho_torch.engine.inference"):
        predict_patches(OOM(), {"diffraction": np.ones((9, 1, 4, 4), np.float32)}, 5)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["out of memory at infer_batch_size=5; retrying from pattern 0 with "
                     "infer_batch_size=2"]


def test_patterns_trained_counts_the_partial_last_batch(tiny_data, tmp_path):
    from ptycho_torch.engine.training import fit_model
    train, _ = tiny_data
    fit = fit_model(ModelConfig(architecture="cnn", **SMALL),
                    TrainingConfig(epochs=2, batch_size=16), DataConfig(input_scale=1.0), train,
                    tmp_path, progress_bar=False)
    assert fit.n_train % 16 != 0  # the tiny scan has a partial last batch
    assert fit.patterns_trained == 2 * fit.n_train
    assert fit.steps_completed * 16 > fit.patterns_trained
