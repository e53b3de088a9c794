"""CUDA checks (need a CUDA device; deselected by default, run with ``pytest -m cuda``).

scripts/benchmarks/gpu_check.sh runs them: inference on CUDA equals CPU, inference memory
is bounded by one batch, and a one-epoch study trains and predicts on CUDA.
"""
import math

import numpy as np
import pytest
import torch

import grid_lines_torch_runner as runner
from ptycho.probes import make_probe
from ptycho_torch.engine.inference import run_torch_inference

pytestmark = pytest.mark.cuda

TINY = dict(N=32, object_size=64, n_lines=40, train_stride=4, test_stride=8, n_train_objects=1,
            n_test_objects=1, epochs=1, batch_size=16, fno_width=8, fno_modes=4, fno_blocks=1,
            fno_cnn_blocks=1, progress_bar=False)


class _Cfg:
    def __init__(self, b):
        self.infer_batch_size = b


@pytest.fixture(autouse=True)
def _exact_float32():
    """No TF32 in matmul / cuDNN convolutions, so CUDA and CPU agree to float32 precision."""
    assert torch.cuda.is_available(), "these tests need a CUDA device (run them with -m cuda on a GPU)"
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _model(arch: str, N: int = 64, width: int = 16):
    from ptycho.config.config import DataConfig, ModelConfig, TrainingConfig
    from ptycho_torch.model import PtychoPINN_Lightning
    torch.manual_seed(0)
    model = PtychoPINN_Lightning(
        ModelConfig(N=N, architecture=arch, fno_width=width, fno_modes=8, fno_blocks=2,
                    fno_cnn_blocks=1), DataConfig(input_scale=1.0), TrainingConfig())
    model.set_probe(make_probe(N))
    return model


def _data(n: int, N: int = 64, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"diffraction": rng.random((n, 1, N, N), dtype=np.float32),
            "coords_nominal": np.zeros((n, 1, 1, 2), np.float32), "probeGuess": make_probe(N)}


@pytest.mark.parametrize("arch", ["cnn", "fno", "hybrid"])
def test_inference_on_cuda_equals_cpu(arch):
    model = _model(arch)
    data = _data(300)
    cpu = run_torch_inference(model, data, _Cfg(64))
    model.to("cuda")
    gpu = run_torch_inference(model, data, _Cfg(64))
    assert gpu.dtype == np.complex64 and gpu.shape == cpu.shape == (300, 1, 64, 64)
    scale = float(np.abs(cpu).max())
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-4 * scale)
    # batch size does not change the result on CUDA either
    np.testing.assert_allclose(run_torch_inference(model, data, _Cfg(7)), gpu, rtol=1e-4, atol=1e-4 * scale)


def test_inference_peak_memory_is_bounded_by_one_batch():
    model = _model("fno", width=8).to("cuda").eval()
    batch, k, peaks = 64, 100, {}
    for n in (batch, k * batch):
        data = _data(n, seed=n)
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        out = run_torch_inference(model, data, _Cfg(batch))
        torch.cuda.synchronize()
        peaks[n] = torch.cuda.max_memory_allocated() - base
        assert torch.cuda.memory_allocated() - base < 2**20  # nothing left behind on the device
        assert out.shape[0] == n
    one, many = peaks[batch], peaks[k * batch]
    assert many <= 1.1 * one + 4 * 2**20, (one, many)  # flat: one batch at a time
    # keeping the 6 400 outputs (complex64, 210 MB) on the device would have shown up
    assert many < one + k * batch * 64 * 64 * 8 / 2


def test_one_epoch_study_trains_and_predicts_on_cuda(tmp_path):
    cfg = runner.from_preset("none", architecture="fno", device="cuda", output_dir=str(tmp_path / "s"),
                             **TINY)
    metrics = runner.run_grid_lines_torch(cfg)
    assert metrics["device"].startswith("cuda")
    assert metrics["epochs_completed"] == 1
    for key in ("mae", "psnr", "ssim", "frc50"):
        assert all(math.isfinite(v) for v in metrics[key]), key
    assert math.isfinite(metrics["final_train_loss"]) and metrics["train_time_s"] > 0
    assert (tmp_path / "s" / "runs" / "pinn_fno" / "model.ckpt").is_file()
