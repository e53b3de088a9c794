#!/usr/bin/env python
"""Write the realistic benchmark scan: the run 1084 object, probe and real positions.

    python scripts/studies/make_run1084_scan.py --output outputs/run1084/scan.npz

Simulates Poisson counts of ``data/run1084_recon3_postPC.npz``'s object (227 x 226) under
its experimental 64 x 64 probe at its 1087 position-corrected scan positions (not a grid;
``data/README.md``), with the forward model of ``ptycho.datagen.spiral_scan`` (sub-pixel
positions exact), and writes an upstream PtychoPINN NPZ (the object in ``objectGuess``),
readable by every study entry point (``--train-npz FILE --N 64``). The readers take a
foreign file's ``objectGuess`` for what it is in a measurement (an earlier
reconstruction), not for ground truth, so studies of this file score without ground truth
(``data_residual``); the true object is the source file's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from ptycho.datagen.spiral_scan import simulate_at_positions  # noqa: E402
from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz  # noqa: E402

SOURCE = _REPO / "data" / "run1084_recon3_postPC.npz"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--output", default="outputs/run1084/scan.npz")
    p.add_argument("--nphotons", type=float, default=1e6, help="mean counts per pattern")
    p.add_argument("--n-positions", type=int, default=0,
                   help="use the first K positions (0: all 1087)")
    p.add_argument("--bad-pixel-fraction", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    with np.load(SOURCE, allow_pickle=False) as z:
        obj, probe = z["objectGuess"], z["probeGuess"]
        pos = np.stack([z["xcoords"], z["ycoords"]], axis=1)
    if a.n_positions > 0:
        pos = pos[:a.n_positions]
    N = probe.shape[-1]
    # unit-energy probe: the simulator's photon scale then carries the dose
    probe = probe / np.sqrt(np.sum(np.abs(probe) ** 2))
    try:   # e.g. a dose <= 0: refused in one line, before the file is written
        scan = simulate_at_positions(obj, N, pos, probe, a.nphotons,
                                     np.random.default_rng(a.seed), a.bad_pixel_fraction)
    except ValueError as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    path = write_ptychopinn_npz(a.output, scan)
    print(f"{path}: {len(pos)} positions, N = {N}, mean counts per pattern "
          f"{scan.counts.sum((1, 2)).mean():.4g}, photon scale {scan.photon_scale:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
