"""A model file is data, not code (ptycho_torch.model.checkpoint): what a training writes loads with
torch's weights-only unpickler; a file whose pickle would run code is refused by every loader
before it runs, nothing written; --trust-checkpoint is the one way to load other objects.
(--resume's refusal is the row ``resume_untrusted_checkpoint`` of test_reliability.py.)"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import grid_lines_torch_runner as runner
from ptycho.config.config import DataConfig, ModelConfig, TrainingConfig
from ptycho.config.validation import StudyError
from ptycho_torch.model.checkpoint import load_checkpoint, load_model
from ptycho_torch.cli import reconstruct_main
from ptycho_torch.model import PtychoPINN_Lightning
from ptycho_torch.studies import comparison as compare

OLD = Path(__file__).resolve().parents[1] / "data" / "pre_move_fno.ckpt"  # a valid tiny model


def refusal(path, names: str = "os.makedirs", flag: str = " [flag --checkpoint]") -> str:
    return (f"checkpoint '{path}' holds Python objects beyond weights and plain values ({names}), "
            "which can run code when loaded (allowed: weights and plain values; pass "
            f"--trust-checkpoint to load it anyway, only if you trust the file's source){flag}")


@pytest.fixture
def shared(tmp_path, code_on_load):
    """A valid model checkpoint with one callback state whose unpickling runs code (makes
    the directory ``marker``): ``(path, marker)``."""
    ckpt = torch.load(OLD, map_location="cpu", weights_only=True)
    marker = tmp_path / "MARKER"
    ckpt["callbacks"]["Injected"] = code_on_load(marker)
    path = tmp_path / "from_someone" / "model.ckpt"
    path.parent.mkdir()
    torch.save(ckpt, path)
    return path, marker


def test_the_crafted_checkpoint_runs_its_code_when_trusted(shared):
    """The payload is live (so the refusals below mean something): --trust-checkpoint runs it."""
    path, marker = shared
    with pytest.raises(StudyError) as exc:
        load_checkpoint(path)
    assert str(exc.value) == refusal(path, flag="") and not marker.exists()
    assert load_checkpoint(path, trust=True)["epoch"] == 1 and marker.is_dir()


def test_ptycho_reconstruct_refuses_it_running_and_writing_nothing(shared, tiny_paths, tmp_path,
                                                                 capsys):
    path, marker = shared
    out = tmp_path / "out"
    code = reconstruct_main(["--checkpoint", str(path), "--data", str(tiny_paths.test),
                             "--output-dir", str(out), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"error: {refusal(path)}"
    assert not marker.exists() and not out.exists()


def test_ptycho_compare_refuses_it_as_a_reused_model(shared, tmp_path, capsys):
    path, marker = shared
    out = tmp_path / "never"
    tiny = ["--N", "32", "--object-size", "64", "--n-lines", "40", "--train-stride", "4",
            "--test-stride", "8", "--epochs", "1", "--architectures", "cnn", "--no-progress-bar"]
    code = compare.main([*tiny, "--reuse-models", str(path), "--output-dir", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"error: --reuse-models: {refusal(path, flag='')}"
    assert not marker.exists() and not out.exists()


def test_load_from_checkpoint_is_weights_only_whatever_the_environment(shared, monkeypatch):
    """The class's own loader does not follow torch's default: with
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD set, an unset ``weights_only`` would unpickle in full."""
    path, marker = shared
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(pickle.UnpicklingError, match="os.makedirs"):
        PtychoPINN_Lightning.load_from_checkpoint(str(path), map_location="cpu")
    assert not marker.exists()
    assert isinstance(PtychoPINN_Lightning.load_from_checkpoint(OLD, map_location="cpu"),
                      PtychoPINN_Lightning)


def _with_config_objects(tmp_path) -> Path:
    """The tiny model with its hyperparameters as the config dataclasses themselves (what a
    module that saves its config objects writes): harmless, but Python objects."""
    ckpt = torch.load(OLD, map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    ckpt["hyper_parameters"] = {"model_config": ModelConfig.from_dict(hp["model_config"]),
                                "data_config": DataConfig.from_dict(hp["data_config"]),
                                "training_config": TrainingConfig.from_dict(hp["training_config"])}
    path = tmp_path / "objects.ckpt"
    torch.save(ckpt, path)
    return path


def test_a_checkpoint_of_python_objects_loads_with_trust_checkpoint_only(tmp_path, tiny_paths,
                                                                       capsys):
    path = _with_config_objects(tmp_path)
    names = ", ".join(f"ptycho.config.config.{c}" for c in ("DataConfig", "ModelConfig",
                                                             "TrainingConfig"))
    out = tmp_path / "out"
    argv = ["--checkpoint", str(path), "--data", str(tiny_paths.test), "--output-dir", str(out),
            "--device", "cpu"]
    assert reconstruct_main(argv) == 2
    assert capsys.readouterr().err.strip() == f"error: {refusal(path, names)}"
    assert not out.exists()
    assert reconstruct_main([*argv, "--trust-checkpoint"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["architecture"] == "fno" and (out / "recon.npz").is_file()


def test_a_trained_checkpoint_is_weights_and_plain_values(tmp_path, tiny_paths):
    """A tiny study with every optional state a checkpoint can hold (moving weight average,
    learned probe, early stopping) and a learning rate given as a NumPy number (np.logspace):
    every file it writes loads with ``torch.load(weights_only=True)``, no allow-list."""
    lr = np.logspace(-3, -2, 3)[1]
    assert type(lr) is np.float64
    cfg = runner.from_preset("none", N=32, test_stride=8, architecture="fno", fno_width=8,
                             fno_modes=4, fno_blocks=1, fno_cnn_blocks=1, batch_size=16,
                             num_threads=1, progress_bar=False, epochs=1, learning_rate=lr,
                             weight_average="ema", probe_update="learn",
                             early_stopping_patience=3, train_npz=str(tiny_paths.train),
                             test_npz=str(tiny_paths.test), output_dir=str(tmp_path / "s"))
    runner.run_grid_lines_torch(cfg)
    files = sorted((tmp_path / "s").rglob("*.ckpt"))
    assert {f.name for f in files} == {"last.ckpt", "epoch000.ckpt", "final.ckpt", "model.ckpt"}
    for f in files:
        assert torch.serialization.get_unsafe_globals_in_checkpoint(str(f)) == [], f
        ckpt = torch.load(f, map_location="cpu", weights_only=True)
        assert {"averaging_state", "optimizer_states", "callbacks", "loops"} <= set(ckpt)
        hp = ckpt["hyper_parameters"]
        assert type(hp["training_config"]["learning_rate"]) is float
        assert hp["training_config"]["learning_rate"] == float(lr)
        assert hp["probe_config"]["probe_update"] == "learn"
    model = load_model(tmp_path / "s" / "runs" / "pinn_fno" / "model.ckpt", "cpu")
    assert model.learned_probe is not None and not model.training


def test_a_protected_interrupted_run_is_not_unpickled_to_say_its_epoch(tmp_path, code_on_load,
                                                                       capsys):
    """Without --resume, an output directory holding last.ckpt is refused with the
    checkpoint's epoch, read weights only: a crafted last.ckpt runs nothing."""
    out, marker = tmp_path / "out", tmp_path / "MARKER"
    last = out / ".work" / "pinn_fno" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    torch.save({"epoch": 2, "state_dict": {}, "callbacks": {"x": code_on_load(marker)}}, last)
    code = runner.main(["--architecture", "fno", "--output-dir", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (f"error: output_dir='{out}' holds an interrupted run of pinn_fno "
                                 f"(checkpoint {last}, which holds Python objects beyond weights); "
                                 "pass --resume to continue it or --overwrite to start over")
    assert not marker.exists()
