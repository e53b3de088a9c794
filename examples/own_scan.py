#!/usr/bin/env python
"""Your own scan, end to end: a scan file without ground truth (here a small simulated one,
written as CXI), a study that trains on it, then ptycho-reconstruct with the trained model.

    python examples/own_scan.py --tiny
    python examples/own_scan.py --scan my_scan.cxi --N 128      # your file instead

Without ``--tiny`` the study runs ``--preset quick``: with Pty-chi installed it first refines
the file's probe and positions with LSQML (otherwise it learns a probe correction).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ptycho.config.runner_config import TorchRunnerConfig
from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import simulate_spiral_scan
from ptycho.formats.cxi import write_cxi
from ptycho.probes import two_mode_probe
from ptycho_torch.cli import reconstruct_main
from ptycho_torch.cli import run_study_cli as run_grid_lines_torch

TINY_MODEL = dict(architecture="fno", fno_width=8, fno_modes=4, fno_blocks=1, fno_cnn_blocks=1,
                  epochs=1, batch_size=8)


def example_scan(path: Path, N: int, tiny: bool) -> Path:
    """A jittered Fermat-spiral scan of a grid-lines object, 2-mode probe, Poisson counts,
    a few bad pixels, written as a CXI file (what a beamline would hand you)."""
    size, n_positions, step = (96, 70, 4.0) if tiny else (256, 1500, 2.6)
    obj = make_object(size, 40 if tiny else 400, np.random.default_rng(3))
    scan = simulate_spiral_scan(obj, N, n_positions, step_px=step, jitter_px=0.7,
                                probe_modes=two_mode_probe(N), nphotons=1e5 if tiny else 1e6,
                                seed=4, bad_pixel_fraction=0.005)
    return write_cxi(path, scan)


def run(argv=None) -> dict:
    """Train on the scan and reconstruct it; returns the reconstruction's paths."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="a tiny scan and model (seconds)")
    p.add_argument("--scan", default=None, help="your scan file (default: write an example)")
    p.add_argument("--N", type=int, default=None, help="pattern size (default 32 tiny, else 64)")
    p.add_argument("--output-dir", default="outputs/example_own_scan")
    p.add_argument("--num-threads", type=int, default=0, help="0: chosen at start")
    a = p.parse_args(argv)
    out, N = Path(a.output_dir), a.N or (32 if a.tiny else 64)
    out.mkdir(parents=True, exist_ok=True)
    scan = Path(a.scan) if a.scan else example_scan(out / "scan.cxi", N, a.tiny)
    settings = TINY_MODEL if a.tiny else {"preset": "quick"}
    cfg = TorchRunnerConfig(train_npz=str(scan), N=N, output_dir=str(out / "study"),
                            num_threads=a.num_threads, progress_bar=False, overwrite=True,
                            **settings)
    m = run_grid_lines_torch(cfg)
    print(f"trained {m['model_id']} on {scan}: {m['steps_completed']} steps, data residual "
          f"{m['data_residual']['amplitude_mae']:.4f} (no ground truth: image metrics are null)")
    checkpoint = out / "study" / "runs" / m["model_id"] / "model.ckpt"
    code = reconstruct_main(["--checkpoint", str(checkpoint), "--data", str(scan),
                             "--output-dir", str(out / "recon"), "--num-threads",
                             str(a.num_threads), "--overwrite"])
    if code != 0:
        raise SystemExit(code)
    return {"study": out / "study", "recon": out / "recon"}


if __name__ == "__main__":
    run()
