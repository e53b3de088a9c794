"""--deterministic: the trainer asks torch for deterministic algorithms while it trains (warn
only, Lightning's ``deterministic="warn"``), and two fits with the same seed end with
bit-identical weights."""
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from ptycho.config.config import DataConfig, ModelConfig, TrainingConfig
from ptycho_torch.engine.data import input_scale_from
from ptycho_torch.engine.training import fit_model

MC = ModelConfig(N=32, architecture="cnn", n_filters_scale=1)


class _FlagsWhileTraining(Callback):
    """torch's determinism flags as the first training batch starts."""

    flags = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.flags is None:
            self.flags = (torch.are_deterministic_algorithms_enabled(),
                          torch.is_deterministic_algorithms_warn_only_enabled())


@pytest.fixture
def determinism_off(monkeypatch):
    """Start with torch's determinism flags off; put them (and cuBLAS's variable, which
    Lightning sets) back afterwards."""
    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.use_deterministic_algorithms(False)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])


def _fit(work, train, deterministic, seed=3):
    tc = TrainingConfig(epochs=1, batch_size=16, max_train_patterns=32, scheduler="none",
                        deterministic=deterministic, seed=seed)
    flags = _FlagsWhileTraining()
    fit = fit_model(MC, tc, DataConfig(input_scale=input_scale_from(train.diffraction)), train,
                    work, progress_bar=False, extra_callbacks=[flags])
    assert fit.steps_completed == 2
    return {k: v.detach().clone() for k, v in fit.model.state_dict().items()}, flags.flags


def test_deterministic_training_sets_the_flag_and_repeats_bit_for_bit(tmp_path, tiny_data,
                                                                      determinism_off):
    train, _ = tiny_data
    first, flags = _fit(tmp_path / "a", train, True)
    assert flags == (True, True)  # on while training, warning (not raising) where it cannot
    second, _ = _fit(tmp_path / "b", train, True)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    # the comparison can fail: another seed ends elsewhere
    other, _ = _fit(tmp_path / "c", train, True, seed=4)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_without_deterministic_the_flag_stays_off(tmp_path, tiny_data, determinism_off):
    train, _ = tiny_data
    _, flags = _fit(tmp_path / "a", train, False)
    assert flags == (False, False)


def test_no_deterministic_turns_the_flag_off_after_a_deterministic_fit(tmp_path, tiny_data,
                                                                        determinism_off):
    """--no-deterministic does what it says in a process that trained with --deterministic
    before (Lightning leaves torch's process-wide flag alone unless told False)."""
    train, _ = tiny_data
    _, on = _fit(tmp_path / "a", train, True)
    _, off = _fit(tmp_path / "b", train, False)
    assert on == (True, True) and off == (False, False)
