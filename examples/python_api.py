#!/usr/bin/env python
"""The config factory from Python: validated configs from flat overrides and a scan file, the
Lightning module built from them with the scan's probe, and a batched prediction.

    python examples/python_api.py --tiny

``create_training_payload`` takes the study fields as flat keys (the ``TorchRunnerConfig``
keywords, one per flag); an unknown key is refused with the closest field name and a bad value
by its field, before anything is built.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ptycho.datagen.grid_lines import make_object
from ptycho.datagen.spiral_scan import simulate_spiral_scan
from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz
from ptycho.probes import two_mode_probe
from ptycho_torch.config_factory import create_training_payload
from ptycho_torch.engine.inference import run_torch_inference

TINY = dict(architecture="hybrid", N=32, fno_width=8, fno_modes=4, fno_blocks=2,
            fno_cnn_blocks=1)


def run(argv=None) -> np.ndarray:
    """Build the model for a scan and predict its patches; returns them (n, C, N, N)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="a tiny scan and model (seconds)")
    p.add_argument("--output-dir", default="outputs/example_python_api")
    a = p.parse_args(argv)
    N = 32 if a.tiny else 64
    out = Path(a.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    obj = make_object(96 if a.tiny else 256, 40, np.random.default_rng(0))
    scan = simulate_spiral_scan(obj, N, 60 if a.tiny else 500, step_px=5.0, jitter_px=0.7,
                                probe_modes=two_mode_probe(N), nphotons=1e4, seed=1)
    path = write_ptychopinn_npz(out / "scan.npz", scan)   # an upstream PtychoPINN NPZ

    overrides = TINY if a.tiny else {"preset": "quick"}
    try:
        create_training_payload(str(path), str(out), overrides={**overrides, "fno_widht": 8})
    except ValueError as err:  # one line; its tail lists every valid key
        print(f"refused: {str(err).split(' (valid keys')[0]}")
    payload = create_training_payload(str(path), str(out), overrides=overrides)
    print(f"model: {payload.model_config.architecture}, width {payload.model_config.fno_width}; "
          f"data: input scale {payload.data_config.input_scale:.4g}, "
          f"{payload.data_config.probe_modes} probe mode(s)")
    model = payload.build_model()                # the generator, with the scan's probe set
    n_parameters = sum(t.numel() for t in model.parameters() if t.requires_grad)
    patches = run_torch_inference(model, payload.train, payload.inference_config)
    print(f"{n_parameters} trainable parameters; predicted patches {patches.shape} "
          f"{patches.dtype} (untrained)")
    return patches


if __name__ == "__main__":
    run()
