#!/usr/bin/env python
"""Two ground-truth-free checks of a trained model on any object of any scan.

    python scripts/studies/self_consistency.py --checkpoint RUN/model.ckpt --data SCAN.npz \
        [--object-index 0] [--infer-batch-size 64] [--num-threads 0] [--json PATH]

Predicts the patches of one object of the scan and prints, with the study's default
stitching:

- the two-half FRC (``ptycho.two_half_frc``): the even and the odd patterns stitched apart,
  the FRC50 and half-bit crossings of the two halves in amplitude and phase. A study writes
  the same to ``metrics.json`` (``two_half_frc``) for test object 0;
- the neighbour phase disagreement (``ptycho.neighbour_agreement``): the median, over the
  pairs of patches whose stitched crops overlap by half or more, of the RMS phase
  difference in the overlap (rad, each pair's constant phase removed).

Neither needs the truth. On the patterns a network was trained on it agrees with itself
whatever its quality, so both mean most on patterns it was not trained on.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _model_object import add_model_object_args, read_object


def _crossing(value, censored) -> str:
    return censored if isinstance(censored, str) else f"{value:.4f}"


def _print(index: int, frc: dict | None, agree: dict) -> None:
    if frc is None:
        print(f"object {index}: too few patterns for two halves that share a box")
    else:
        for i, channel in enumerate(("amplitude", "phase")):
            print(f"object {index}, {channel}: two-half FRC50 "
                  f"{_crossing(frc['frc50'][i], frc['frc50_censored'][i])}, half-bit "
                  f"{_crossing(frc['frc_halfbit'][i], frc['frc_halfbit_censored'][i])} "
                  f"cycles/pixel ({frc['n_patterns'][0]} + {frc['n_patterns'][1]} patterns)")
    if agree["median"] is None:
        print(f"object {index}: no two patches overlap by half a {agree['crop']}-px crop at a "
              "whole-pixel offset: no neighbour disagreement")
    else:
        print(f"object {index}: neighbour phase disagreement {agree['median']:.4f} rad "
              f"(median of {len(agree['pairs'])} pairs, crop {agree['crop']} px)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    add_model_object_args(p, "a scan file (the study's readers)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    a = p.parse_args(argv)
    import numpy as np
    from ptycho.config.config import InferenceConfig
    from ptycho.neighbour_agreement import study_disagreement
    from ptycho.two_half_frc import two_half_frc
    from ptycho_torch.engine.inference import predict_patches
    from ptycho_torch.pipeline.reconstruct import load_model
    read = read_object(a)
    if read is None:
        return 2
    _, sub = read
    model = load_model(a.checkpoint, "cpu")
    pred = np.asarray(predict_patches(model, sub, a.infer_batch_size))
    inference = InferenceConfig()
    frc = two_half_frc(pred, sub.centres, inference)
    agree = study_disagreement(pred, sub.centres, inference)
    _print(a.object_index, frc, agree)
    if a.json:
        Path(a.json).write_text(json.dumps({
            "checkpoint": a.checkpoint, "data": a.data, "object_index": a.object_index,
            "two_half_frc": frc, "neighbour_disagreement": {
                "median": agree["median"], "crop": agree["crop"],
                "values": agree["values"].tolist(), "pairs": agree["pairs"].tolist()}}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
