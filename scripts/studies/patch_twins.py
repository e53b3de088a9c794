#!/usr/bin/env python
"""Per-patch twin check of a trained model on a simulated test scan (``ptycho.patch_twins``).

    python scripts/studies/patch_twins.py --checkpoint RUN/model.ckpt --data test.npz \
        [--object-index 0] [--infer-batch-size 64] [--num-threads 0] [--json PATH]

Predicts the patches of one test object and prints, against the scan's true object phase
(its ``Y_phi`` labels), the median weighted phase correlation of the predicted patches with
the true patches and with their conjugate twins, and the fraction of patches closer to the
twin; and, through the forward model with the model's probe, the median misfit of the
predicted patches and of their twins to the measured patterns, and the fraction of patches
whose twin fits better (``ptycho.patch_twins``). ``--json PATH`` also writes them (with the
per-patch values).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _model_object import add_model_object_args, read_object


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    add_model_object_args(p, "a simulated test scan (with Y_phi labels)")
    p.add_argument("--json", metavar="PATH", help="also write the scores as JSON")
    a = p.parse_args(argv)

    import numpy as np
    from ptycho.patch_twins import patch_twin_scores, twin_data_residuals
    from ptycho_torch.engine.inference import forward_probe, predict_patches
    from ptycho_torch.pipeline.reconstruct import load_model
    read = read_object(a, needs_phase=True)
    if read is None:
        return 2
    data, sub = read
    model = load_model(a.checkpoint, "cpu")
    pred = np.asarray(predict_patches(model, sub, a.infer_batch_size))[:, 0]
    true = np.exp(1j * sub.Y_phi[:, 0])
    probe = forward_probe(model, data)
    s = patch_twin_scores(pred, true, probe)
    valid = None if data.bad_pixels is None else ~np.asarray(data.bad_pixels)
    s.update(twin_data_residuals(pred, sub.diffraction[:, 0], probe, valid))
    print(f"{len(pred)} patches of test object {a.object_index}: phase correlation with the "
          f"true patch (median) {s['median_direct']:.3f}, with its twin {s['median_twin']:.3f}; "
          f"closer to the twin: {s['twin_fraction']:.3f} of the patches")
    print(f"misfit to the measured patterns (median): predicted patches "
          f"{s['median_residual']:.4f}, their twins {s['median_twin_residual']:.4f}; the twin "
          f"fits better for {s['twin_fits_better']:.3f} of the patches")
    if a.json:
        out = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
        Path(a.json).write_text(json.dumps({"checkpoint": a.checkpoint, "data": a.data,
                                            "object_index": a.object_index, **out}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
