#!/usr/bin/env python
"""Write one simulated, non-grid scan in every supported layout (for trying the readers).

    python scripts/studies/make_example_scan.py --output-dir outputs/example_scan

A jittered Fermat-spiral scan of a grid-lines object with Poisson counts, a 2-mode probe
and a few bad pixels, written as an upstream PtychoPINN NPZ (``scan_ptychopinn.npz``), a
Ptychodus pair (``ptychodus/diffraction.h5`` + ``product-in.h5``) and a CXI file
(``scan.cxi``); the true object is saved beside them (``truth.npz``) to judge a
reconstruction by eye. The geometry is the conventional one of docs/data.md, not measured.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))


def main(argv=None) -> int:
    import numpy as np

    from ptycho.datagen.grid_lines import make_object
    from ptycho.datagen.spiral_scan import simulate_spiral_scan
    from ptycho.formats.cxi import write_cxi
    from ptycho.formats.geometry import conventional_geometry
    from ptycho.formats.ptychodus import write_ptychodus
    from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz
    from ptycho.probes import two_mode_probe
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--output-dir", default="outputs/example_scan")
    p.add_argument("--N", type=int, default=64)
    p.add_argument("--object-size", type=int, default=256)
    p.add_argument("--n-positions", type=int, default=1500)
    p.add_argument("--step", type=float, default=2.6, help="spiral step in pixels")
    p.add_argument("--jitter", type=float, default=0.7, help="uniform jitter in pixels")
    p.add_argument("--nphotons", type=float, default=1e6)
    p.add_argument("--bad-pixel-fraction", type=float, default=0.002)
    p.add_argument("--seed", type=int, default=5)
    a = p.parse_args(argv)
    out = Path(a.output_dir)
    obj = make_object(a.object_size, int(400 * (a.object_size / 392) ** 2),
                      np.random.default_rng(a.seed), True)
    scan = simulate_spiral_scan(obj, a.N, a.n_positions, a.step, a.jitter,
                                two_mode_probe(a.N), a.nphotons, a.seed, a.bad_pixel_fraction)
    geometry = conventional_geometry(a.N)
    files = [write_ptychopinn_npz(out / "scan_ptychopinn.npz", scan),
             *write_ptychodus(out / "ptychodus", scan, geometry),
             write_cxi(out / "scan.cxi", scan, geometry)]
    np.savez(out / "truth.npz", object=scan.object, positions_px=scan.positions_px)
    span = np.ptp(scan.positions_px, axis=0)
    print(f"{len(scan.positions_px)} positions spanning {span[0]:.0f} x {span[1]:.0f} px; "
          f"mean counts per pattern {scan.counts.sum((1, 2)).mean():.3g}")
    for f in files:
        print(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
