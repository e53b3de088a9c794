#!/usr/bin/env python
"""Per-patch twin check of a trained model on a simulated test scan (``ptycho.patch_twins``).

    python scripts/studies/patch_twins.py --checkpoint RUN/model.ckpt --data test.npz

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

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--checkpoint", required=True, help="a study's runs/<model>/model.ckpt")
    p.add_argument("--data", required=True, help="a simulated test scan (with Y_phi labels)")
    p.add_argument("--object-index", type=int, default=0, help="which test object (default 0)")
    p.add_argument("--infer-batch-size", type=int, default=64)
    p.add_argument("--json", metavar="PATH", help="also write the scores as JSON")
    a = p.parse_args(argv)

    import numpy as np

    from ptycho.formats.readers import read_dataset
    from ptycho.patch_twins import patch_twin_scores, twin_data_residuals
    from ptycho_torch.engine.inference import forward_probe, predict_patches
    from ptycho_torch.pipeline.reconstruct import load_model

    if a.infer_batch_size < 1:
        print(f"error: --infer-batch-size {a.infer_batch_size}: allowed 1 or more",
              file=sys.stderr)
        return 2
    for flag, path in (("--checkpoint", a.checkpoint), ("--data", a.data)):
        if not Path(path).is_file():
            print(f"error: {flag} {path}: no such file", file=sys.stderr)
            return 2
    data = read_dataset(a.data)
    if data.Y_phi is None:
        print(f"error: --data {a.data}: no Y_phi labels (the true object phase of each patch): "
              "a simulated test scan is needed", file=sys.stderr)
        return 2
    objects = np.unique(data.object_index)
    if a.object_index not in objects:
        print(f"error: --object-index {a.object_index}: allowed {objects.tolist()}",
              file=sys.stderr)
        return 2
    model = load_model(a.checkpoint, "cpu")
    sub = data.select(data.object_selection(a.object_index))
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
