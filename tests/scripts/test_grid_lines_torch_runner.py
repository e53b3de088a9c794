"""The grid-lines runner: inference contract, batching, config threading, CLI, end to end."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import grid_lines_torch_runner as runner
from ptycho.config.cli import config_from_argv
from ptycho_torch.engine.inference import run_torch_inference
from torch_fixtures import TINY_STUDY_FLAGS

REPO = Path(__file__).resolve().parents[2]
TINY_FLAGS = TINY_STUDY_FLAGS


class SpyModel(torch.nn.Module):
    """Records every forward_predict call; model(X) must never be used for prediction."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(2.0))
        self.calls = []

    def forward(self, *args, **kwargs):
        raise AssertionError("model(X) was called; prediction must use forward_predict")

    def forward_predict(self, x, positions, probe, input_scale_factor):
        self.calls.append(dict(x=x, positions=positions, probe=probe, scale=input_scale_factor,
                               training=self.training, grad=torch.is_grad_enabled()))
        # depends on every argument and on the pattern's identity (its mean)
        obj = (x * input_scale_factor * self.w).to(torch.complex64)
        return obj * probe + positions[..., 0, :1, None]


def _test_data(n=37, C=1, N=8, seed=0):
    rng = np.random.default_rng(seed)
    return {"diffraction": rng.random((n, C, N, N), dtype=np.float32),
            "coords_nominal": rng.standard_normal((n, C, 1, 2)).astype(np.float32),
            "probeGuess": (rng.random((N, N)) + 1j * rng.random((N, N))).astype(np.complex64)}


class _Cfg:
    def __init__(self, b):
        self.infer_batch_size = b


@pytest.mark.parametrize("batch", [1, 5, 16, 37, 100])
def test_forward_predict_called_with_four_arguments_in_batches(batch):
    spy, data = SpyModel(), _test_data()
    out = run_torch_inference(spy, data, _Cfg(batch))
    assert len(spy.calls) == -(-37 // batch)
    for call in spy.calls:
        b = call["x"].shape[0]
        assert 1 <= b <= batch
        assert call["x"].dtype == torch.float32 and call["x"].shape[1:] == (1, 8, 8)
        assert call["positions"].dtype == torch.float32 and call["positions"].shape == (b, 1, 1, 2)
        assert call["probe"].dtype == torch.complex64 and call["probe"].shape == (8, 8)
        assert call["scale"].dtype == torch.float32 and call["scale"].shape == (b, 1, 1, 1)
        assert not call["training"] and not call["grad"]
    assert isinstance(out, np.ndarray) and out.dtype == np.complex64 and out.shape == (37, 1, 8, 8)
    # order preserved and equal to one unbatched prediction
    with torch.no_grad():
        full = spy.forward_predict(torch.from_numpy(data["diffraction"]),
                                   torch.from_numpy(data["coords_nominal"]),
                                   torch.from_numpy(data["probeGuess"]), torch.ones(37, 1, 1, 1))
    np.testing.assert_array_equal(out, full.numpy())
    assert spy.training  # mode restored


def test_safe_defaults_and_model_input_scale():
    spy = SpyModel()
    spy.data_config = type("D", (), {"input_scale": 3.0})()
    data = {"diffraction": np.ones((4, 1, 8, 8), np.float32)}
    out = run_torch_inference(spy, data, _Cfg(3))
    assert torch.equal(spy.calls[0]["positions"], torch.zeros(3, 1, 1, 2))
    assert torch.equal(spy.calls[0]["probe"], torch.ones(8, 8, dtype=torch.complex64))
    assert torch.equal(spy.calls[0]["scale"], torch.full((3, 1, 1, 1), 3.0))
    np.testing.assert_allclose(out.real, 6.0)


def test_outputs_come_back_to_cpu_per_batch():
    class DeviceSpy(SpyModel):
        def forward_predict(self, *a):
            out = super().forward_predict(*a)
            self.calls[-1]["out"] = out
            return out
    spy = DeviceSpy()
    run_torch_inference(spy, _test_data(n=10), _Cfg(4))
    assert all(c["out"].device.type == "cpu" for c in spy.calls)
    assert [c["x"].shape[0] for c in spy.calls] == [4, 4, 2]


def test_inference_halves_batch_on_out_of_memory():
    class OOMSpy(SpyModel):
        def forward_predict(self, x, *a):
            if x.shape[0] > 6:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
            return super().forward_predict(x, *a)
    data = _test_data(n=30)
    sizes = []
    out = run_torch_inference(OOMSpy(), data, _Cfg(32), on_batch_size_change=sizes.append)
    assert sizes == [16, 8, 4]
    np.testing.assert_array_equal(out, run_torch_inference(SpyModel(), data, _Cfg(4)))


def test_non_oom_errors_propagate():
    class Broken(SpyModel):
        def forward_predict(self, *a):
            raise RuntimeError("shape mismatch")
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_torch_inference(Broken(), _test_data(n=3), _Cfg(2))


def test_cli_flags_reach_the_generator():
    from neuralop.layers.spectral_convolution import SpectralConv
    from ptycho_torch.generators import build_generator
    cfg = config_from_argv(["--architecture", "fno", "--fno-modes", "6", "--fno-width", "24",
                                   "--fno-blocks", "3", "--fno-cnn-blocks", "1"])
    m = cfg.model
    assert (m.fno_modes, m.fno_width, m.fno_blocks, m.fno_cnn_blocks) == (6, 24, 3, 1)
    gen = build_generator(cfg.model)
    spectral = [mod for mod in gen.modules() if isinstance(mod, SpectralConv)]
    assert len(spectral) == 3
    assert all(mod.in_channels == 24 and mod.out_channels == 24 for mod in spectral)
    assert len(gen.refiners) == 1


def test_runner_reexports_the_study_api(capsys):
    from ptycho.config.study_config import StudyConfig
    from ptycho.config.validation import StudyError
    from ptycho.config.runner_config import TorchRunnerConfig
    assert runner.TorchRunnerConfig is TorchRunnerConfig and runner.StudyError is StudyError
    assert runner.from_preset("none") == StudyConfig() == TorchRunnerConfig().to_study()
    with pytest.raises(SystemExit) as exc:
        runner.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "--infer-batch-size" in text and "--fno-width" in text and "--config" in text


def test_presets_and_explicit_flags():
    quick = config_from_argv(["--preset", "quick"])
    assert quick.run.preset == "quick" and quick.training.max_train_minutes == 0
    paper = config_from_argv(["--preset", "paper", "--epochs", "3"])
    assert (paper.model.N, paper.training.learning_rate, paper.training.seed,
            paper.training.scheduler) == (128, 2e-4, 3, "plateau")
    assert paper.training.epochs == 3  # explicit flag wins
    default = config_from_argv([])
    assert default == runner.TorchRunnerConfig().to_study()
    assert (default.model.architecture, default.inference.infer_batch_size,
            default.training.epochs) == ("hybrid", 128, 50)


def test_runner_config_validation_messages():
    with pytest.raises(ValueError, match=re.escape("ModelConfig.fno_modes=20 exceeds N//2=16 for N=32")):
        runner.from_preset("none", N=32, fno_modes=20)
    with pytest.raises(ValueError, match=re.escape("SimulationConfig.test_stride=40 exceeds N=32")):
        runner.from_preset("none", N=32, test_stride=40, fno_modes=8)
    with pytest.raises(ValueError, match=re.escape("RunConfig.test_npz needs --train-npz too")):
        runner.from_preset("none", test_npz="b.npz")
    # --train-npz alone is allowed: the scored scan defaults to the training scan
    alone = runner.from_preset("none", train_npz="a.npz")
    assert alone.run.train_npz == "a.npz" and alone.run.test_npz is None


def _run_cli(args, cwd=REPO, timeout=600):
    env = {"PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin",
           **{k: v for k, v in __import__("os").environ.items()}}
    return subprocess.run([sys.executable, str(REPO / "scripts/studies/grid_lines_torch_runner.py"), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)


def test_tiny_end_to_end_cli_run_writes_every_artifact(tmp_path, capsys):
    out = tmp_path / "study"
    r = _run_cli([*TINY_FLAGS, "--architecture", "fno", "--output-dir", str(out),
                  "--infer-batch-size", "7", "--num-threads", "1"])
    assert r.returncode == 0, r.stderr[-3000:]
    run = out / "runs" / "pinn_fno"
    for p in [run / "metrics.json", run / "history.json", run / "config.json", run / "model.ckpt",
              out / "recons" / "pinn_fno" / "recon.npz", out / "visuals" / "pinn_fno_reconstruction.png",
              out / "visuals" / "pinn_fno_frc.png"]:
        assert p.is_file() and p.stat().st_size > 0, p
    m = json.loads((run / "metrics.json").read_text())
    for key in ("mae", "mse", "psnr", "ssim", "frc50"):  # top level, [amplitude, phase]
        assert len(m[key]) == 2 and all(np.isfinite(m[key])), key
    assert m["ground_truth"] is True and set(m["frc"]) >= {"amplitude", "phase"}
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["study"]["model"]["fno_width"] == 8
    assert cfg["study"]["inference"]["infer_batch_size"] == 7
    hist = json.loads((run / "history.json").read_text())
    assert len(hist["train_loss"]) == 1 and np.isfinite(hist["val_loss"][0])
    rec = np.load(out / "recons" / "pinn_fno" / "recon.npz")
    side = ((64 - 32) // 8 + 1) * 8
    assert rec["reconstruction"].shape == (side, side) and rec["reconstruction"].dtype == np.complex64
    assert "pinn_fno" in r.stdout and "SSIM" in r.stdout
    # the saved checkpoint holds exactly the weights the reconstruction was made with; the CLI
    # ran with --num-threads 1, so this side runs with one thread too (bit-identical CPU math)
    from ptycho.config.config import InferenceConfig
    from ptycho.io import load_dataset
    from ptycho_torch.model import PtychoPINN_Lightning
    from ptycho_torch.engine.inference import reconstruct_test_object
    loaded = PtychoPINN_Lightning.load_from_checkpoint(run / "model.ckpt", map_location="cpu")
    test = load_dataset(cfg["data"]["test_npz"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        again = reconstruct_test_object(loaded, test, InferenceConfig(infer_batch_size=7))
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(again.recon, rec["reconstruction"])
    # a second run into the finished study is refused without --overwrite, nothing changed
    # (the entry point in this process; test_reliability runs a refusal as a real process)
    before = (run / "metrics.json").read_bytes()
    capsys.readouterr()
    assert runner.main([*TINY_FLAGS, "--architecture", "fno", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already holds a finished study" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and (run / "metrics.json").read_bytes() == before


@pytest.mark.parametrize("args,needles", [
    (["--fno-modes", "40"], ["error: ModelConfig.fno_modes=40 exceeds N//2=32 for N=64",
                             "[flag --fno-modes]"]),
    (["--architecture", "unet"], ["error: argument --architecture:", "'unet'",
                                  "(run with --help to list the flags)"]),
    (["--epochs", "0"], ["error: TrainingConfig.epochs=0 is out of range", "[flag --epochs]"]),
    (["--train-npz", "/nonexistent/train.npz"], ["error: ", "/nonexistent/train.npz",
                                                 "[flag --train-npz]"]),
])
def test_bad_input_is_refused_before_training(tmp_path, args, needles, capsys):
    out = tmp_path / "never"
    code = runner.main([*args, "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not out.exists()


def test_output_dir_that_is_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert runner.main(["--output-dir", str(f)]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "--output-dir" in err
    assert f.read_text() == "x"


def test_the_log_says_where_the_dataset_cache_and_the_outputs_are(tmp_path, capsys):
    """The absolute output folder before the work, the simulated dataset's cache folder with
    its size on disk (written, then reused by a second run), and where metrics.json, the
    reconstruction and the figures went."""
    out = tmp_path / "study"
    argv = [*TINY_FLAGS, "--architecture", "fno", "--output-dir", str(out), "--num-threads", "1"]
    for run_no, verb in ((1, "written"), (2, "reused")):
        assert runner.main(argv + (["--overwrite"] if run_no == 2 else [])) == 0
        err = capsys.readouterr().err.splitlines()
        run = out / "runs" / "pinn_fno"
        data = json.loads((run / "config.json").read_text())["data"]
        cache = Path(data["train_npz"]).parent
        size = sum(Path(data[k]).stat().st_size for k in ("train_npz", "test_npz")) / 1e6
        assert cache.parent == out / "datasets"
        line = next(m for m in err if m.startswith("dataset cache "))
        assert re.fullmatch(rf"dataset cache {verb} in \d+\.\d s: {re.escape(str(cache.resolve()))} "
                            rf"\({size:.1f} MB on disk; --cache-dir moves it\)", line), line
        assert f"output folder: {out.resolve()}" in err
        assert err.index(f"output folder: {out.resolve()}") < next(
            i for i, m in enumerate(err) if m.startswith("training fno"))
        assert (f"written: {(run / 'metrics.json').resolve()}; reconstruction "
                f"{(out / 'recons' / 'pinn_fno' / 'recon.npz').resolve()}; figures in "
                f"{(out / 'visuals').resolve()}") in err
