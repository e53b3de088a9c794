#!/usr/bin/env python
"""Score one trained model's test scan under several stitching options (predicts once).

    python scripts/studies/stitch_variants.py --checkpoint RUN/model.ckpt --data test.npz \
        [--crops 8,16,32,48,64] [--num-threads 0]

Prints a markdown table: tiles (gridsize 1 grid scans), then positions with each central
crop, sub-pixel mode and with/without per-patch phase alignment, all scored on the same
region (the grid region of a grid scan). The evidence behind the --stitch defaults.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
for _path in (_REPO, _REPO / "scripts" / "studies"):  # the package; _model_object
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from _model_object import add_threads_arg, apply_threads  # noqa: E402


def main(argv=None) -> int:
    from ptycho.config.config import InferenceConfig
    from ptycho.evaluation import evaluate_reconstruction
    from ptycho.formats.readers import read_dataset
    from ptycho.study_metrics import format_crossing, format_number
    from ptycho import reconstruction as study
    from ptycho_torch.engine.inference import reconstruct_test_object
    from ptycho_torch.pipeline.reconstruct import load_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="a test scan with ground truth")
    p.add_argument("--crops", default="8,16,32,48,64")
    add_threads_arg(p)
    a = p.parse_args(argv)
    if not apply_threads(a):
        return 2
    model = load_model(a.checkpoint, "cpu")
    data = read_dataset(a.data, gridsize=model.model_config.gridsize)
    N = data.N
    base = reconstruct_test_object(model, data, InferenceConfig(stitch="positions"))
    patches = base.patches
    variants = []
    if data.gridsize == 1 and study.grid_geometry(data) is not None:
        variants.append(InferenceConfig(stitch="tiles"))
    for crop in (int(c) for c in a.crops.split(",")):
        if crop > N:
            continue
        for sub in ("none", "fourier"):
            for align in (False, True):
                variants.append(InferenceConfig(stitch_crop=crop, stitch_subpixel=sub,
                                                align_phase=align))
    print("| stitch | crop | subpixel | align phase | amp SSIM | amp PSNR | phase PSNR | "
          "phase corr | phase strength | amp FRC50 | phase FRC50 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for inf in variants:
        rec = study.stitch_test_object(patches, data, inf)
        r = evaluate_reconstruction(rec.recon, rec.ground_truth)
        m = r["metrics"]
        cells = [inf.stitch, str(inf.crop_for(N) if inf.stitch == "positions" else
                                 study.grid_geometry(data)[1]),
                 inf.stitch_subpixel if inf.stitch == "positions" else "-",
                 str(inf.align_phase) if inf.stitch == "positions" else "-",
                 format_number(m["ssim"][0], 3), format_number(m["psnr"][0], 4),
                 format_number(m["psnr"][1], 4), format_number(r["phase_correlation"], 3),
                 format_number(r["phase_strength_ratio"], 3),
                 format_crossing(m["frc50"][0], r["frc50_censored"][0], 3),
                 format_crossing(m["frc50"][1], r["frc50_censored"][1], 3)]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
