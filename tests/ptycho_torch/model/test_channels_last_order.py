"""In channels-last order a whole training step keeps its activations and their gradients in
that order: every GELU and GELU backward of the generator sees contiguous operands (the
``(B, H, W, C)`` views that ``channels_last.gelu`` hands it), and no sum mixes orders. An operand
in neither order (a channel slice of a channels-last tensor) sends GELU's backward down a
strided path about ten times slower, and a channels-last operand down one 1.2 to 1.8 times
slower (docs/results/2026-12-speed.md), so a layer that breaks the order fails here, not
only in a benchmark."""
from dataclasses import replace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ptycho.config.config import DataConfig
from ptycho.config.presets import from_preset
from ptycho_torch.core.precision import autocast, bf16_supported
from ptycho_torch.generators import hybrid, layers
from ptycho_torch.model import build_model

GELU = {"aten.gelu.default", "aten.gelu_backward.default"}
ADD = "aten.add.Tensor"


def _order(t: torch.Tensor) -> str:
    if t.is_contiguous(memory_format=torch.channels_last):
        return "channels_last"
    return "contiguous" if t.is_contiguous() else "neither"


class _OrderLog(TorchDispatchMode):
    """Records each GELU (forward or backward) with a 4-D operand of more than two channels
    that is not contiguous, and each sum whose 4-D operands mix orders or are in neither
    (the DFT form's sums along its own contiguous views are in one order and pass)."""

    def __init__(self):
        super().__init__()
        self.off_order = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if name in GELU or name == ADD:
            orders = {_order(a) for a in args
                      if isinstance(a, torch.Tensor) and a.ndim == 4 and a.shape[1] > 2}
            bad = (orders - {"contiguous"} if name in GELU
                   else orders if len(orders) > 1 or "neither" in orders else set())
            if bad:
                self.off_order.append((name, sorted(orders)))
        return func(*args, **(kwargs or {}))


def _off_order_calls(precision: str) -> list:
    cfg = from_preset("quick")
    torch.manual_seed(0)
    model = build_model(cfg.model, DataConfig(),
                        replace(cfg.training, precision=precision, channels_last=True))
    n = cfg.model.N
    x = torch.rand(2, 1, n, n)
    pos, scale = torch.zeros(2, 1, 1, 2), torch.ones(2, 1, 1, 1)
    log = _OrderLog()
    with log:
        with autocast(precision, "cpu"):
            loss = model.loss_fn(model(x, pos, None, scale), x, mask=model.valid_mask)
        loss.backward()
    return log.off_order


@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_a_channels_last_training_step_stays_in_channels_last_order(precision):
    if precision == "bf16-mixed" and not bf16_supported("cpu"):
        precision = "32"   # the order does not depend on the precision's arithmetic
    assert _off_order_calls(precision) == []


def test_the_check_sees_a_decoder_that_breaks_the_order(monkeypatch):
    monkeypatch.setattr(hybrid, "channels_last_grad", lambda t: t)
    calls = _off_order_calls("32")
    assert ("aten.gelu_backward.default", ["contiguous", "neither"]) in calls


def test_the_check_sees_a_gelu_on_the_channels_last_tensors_themselves(monkeypatch):
    for module in (hybrid, layers):
        monkeypatch.setattr(module, "gelu", torch.nn.functional.gelu)
    assert ("aten.gelu.default", ["channels_last"]) in _off_order_calls("32")


def test_the_check_sees_spectral_layers_that_return_channels_first(monkeypatch):
    monkeypatch.setattr(layers, "uses_dft_form", lambda conv, x: False)   # neuraloperator's FFTs
    assert ("aten.add.Tensor", ["channels_last", "contiguous"]) in _off_order_calls("32")
