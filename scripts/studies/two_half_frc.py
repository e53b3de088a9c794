#!/usr/bin/env python
"""The two-half FRC (``ptycho.two_half_frc``) of a trained model on any object of any scan.

    python scripts/studies/two_half_frc.py --checkpoint RUN/model.ckpt --data SCAN.npz \
        [--object-index 0] [--infer-batch-size 64]

Predicts the patches of one object of the scan, stitches its even and its odd patterns
apart with the study's default stitching, and prints the FRC50 and half-bit crossings of
the two halves in amplitude and phase: what a study writes to ``metrics.json`` as
``two_half_frc`` for test object 0, here for any object, test or training scan. It needs
no ground truth. ``--json PATH`` also writes the result.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _model_object import add_model_object_args, read_object


def _crossing(value, censored) -> str:
    return censored if isinstance(censored, str) else f"{value:.4f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    add_model_object_args(p, "a scan file (the study's readers)")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    a = p.parse_args(argv)
    import numpy as np
    from ptycho.config.config import InferenceConfig
    from ptycho.two_half_frc import two_half_frc
    from ptycho_torch.engine.inference import predict_patches
    from ptycho_torch.pipeline.reconstruct import load_model
    read = read_object(a)
    if read is None:
        return 2
    _, sub = read
    model = load_model(a.checkpoint, "cpu")
    pred = np.asarray(predict_patches(model, sub, a.infer_batch_size))
    out = two_half_frc(pred, sub.centres, InferenceConfig())
    if out is None:
        print(f"object {a.object_index}: too few patterns for two halves that share a box")
        return 0
    for i, channel in enumerate(("amplitude", "phase")):
        print(f"object {a.object_index}, {channel}: two-half FRC50 "
              f"{_crossing(out['frc50'][i], out['frc50_censored'][i])}, half-bit "
              f"{_crossing(out['frc_halfbit'][i], out['frc_halfbit_censored'][i])} "
              f"cycles/pixel ({out['n_patterns'][0]} + {out['n_patterns'][1]} patterns)")
    if a.json:
        Path(a.json).write_text(json.dumps({"checkpoint": a.checkpoint, "data": a.data,
                                            "object_index": a.object_index, **out}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
