#!/usr/bin/env python
"""The quick study from Python: simulate the grid-lines dataset (known ground truth), train
the generator, reconstruct test object 0 and score it.

    python examples/quick_study.py                 # the quick preset (minutes on a CPU)
    python examples/quick_study.py --tiny          # the same code path in seconds

The flat config takes every study flag as a keyword (``TorchRunnerConfig(fno_width=8, ...)``,
validated when built); the study writes its usual folder (runs/, recons/, visuals/,
datasets/) under ``--output-dir``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ptycho.config.runner_config import TorchRunnerConfig
from ptycho_torch.cli import run_study_cli as run_grid_lines_torch

# a small simulation and a small generator: the settings the test suite trains in seconds
TINY = dict(N=32, object_size=64, n_lines=40, train_stride=4, test_stride=8, n_train_objects=1,
            n_test_objects=1, fno_width=8, fno_modes=4, fno_blocks=1, fno_cnn_blocks=1,
            epochs=1, min_steps=0)


def run(argv=None) -> dict:
    """Run the study; returns the content of its metrics.json."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny data and model (seconds)")
    p.add_argument("--output-dir", default="outputs/example_quick_study")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--num-threads", type=int, default=0, help="0: chosen at start")
    a = p.parse_args(argv)
    cfg = TorchRunnerConfig(preset="quick", output_dir=a.output_dir, seed=a.seed,
                            num_threads=a.num_threads, progress_bar=False, overwrite=True,
                            **(TINY if a.tiny else {}))
    m = run_grid_lines_torch(cfg)
    (amp_ssim, phase_ssim), (amp_psnr, phase_psnr) = m["ssim"], m["psnr"]
    print(f"{m['model_id']}: {m['steps_completed']} steps; amplitude SSIM {amp_ssim:.3f}, "
          f"PSNR {amp_psnr:.2f} dB; phase SSIM {phase_ssim:.3f}, PSNR {phase_psnr:.2f} dB, correlation "
          f"{m['phase_correlation']:.3f}; data residual {m['data_residual']['amplitude_mae']:.4f}")
    print(f"written: {Path(a.output_dir).resolve()}")
    return m


if __name__ == "__main__":
    run()
