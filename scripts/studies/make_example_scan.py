#!/usr/bin/env python
"""Write one simulated, non-grid scan in every supported layout, with its truth.

    python scripts/studies/make_example_scan.py --output-dir outputs/example_scan
    python scripts/studies/make_example_scan.py --from data/run1084_recon3_postPC.npz \\
        --nphotons 1e9 --positions nominal --output-dir outputs/run1084_1e9

Without ``--from``: a jittered Fermat-spiral scan of a grid-lines object with Poisson
counts, a 2-mode probe and a few bad pixels. With ``--from FILE`` (an NPZ with
``objectGuess``, ``probeGuess`` and positions ``xcoords`` / ``ycoords``, e.g. the realistic
benchmark of ``data/README.md``): that object and probe at those positions, counts at
``--nphotons`` per pattern with Poisson noise, and the positions written with the scan
either the true ones or the file's ``xcoords_start`` / ``ycoords_start`` (``--positions
nominal``), plus ``--position-jitter`` N(0, sigma) px, and the probe written with it the
true one or, with ``--probe-defocus``, a wrong estimate (``ptycho.datagen.from_file``).
``--n-positions K`` keeps K of the file's positions: by default (``--subset dense``) the K
nearest the centre of the scan's bounding box, with ``--subset first`` the first K.

Layouts (``--layouts``): an upstream PtychoPINN NPZ (``scan_ptychopinn.npz``), a Ptychodus
pair (``ptychodus/diffraction.h5`` + ``product.h5``, the names ``ptychodus -b`` reads from its
input folder; the product's object is the window of the object that Ptychodus would build
for the scan: centred on it, the probe's width beyond it), a CXI file (``scan.cxi``) and, with
``--from``, this project's dataset NPZ with the true object as ground truth
(``dataset.npz``: studies of it report SSIM / PSNR against the truth). ``truth.npz`` holds
the object, the true and the written positions, and the probe. The geometry is the
conventional one of docs/reference/formats.md, not measured.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from ptycho.artifacts import atomic_dir  # noqa: E402
from ptycho.config.choices import PROBE_SCALE_MODES  # noqa: E402
from ptycho.datagen.from_file import (  # noqa: E402
    POSITION_CHOICES,
    SUBSET_CHOICES,
    dataset_arrays,
    simulate_from_file,
)
from ptycho.datagen.grid_lines import make_object  # noqa: E402
from ptycho.datagen.spiral_scan import simulate_spiral_scan  # noqa: E402
from ptycho.formats.cxi import write_cxi  # noqa: E402
from ptycho.formats.geometry import conventional_geometry  # noqa: E402
from ptycho.formats.ptychodus import write_ptychodus  # noqa: E402
from ptycho.formats.ptychopinn_npz import write_ptychopinn_npz  # noqa: E402
from ptycho.io import save_dataset  # noqa: E402
from ptycho.probes import two_mode_probe  # noqa: E402

LAYOUTS = ("npz", "ptychodus", "cxi", "dataset")
# what this script writes into --output-dir (a rerun replaces exactly these)
OUTPUT_NAMES = ("scan_ptychopinn.npz", "ptychodus", "scan.cxi", "dataset.npz", "truth.npz")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--output-dir", default="outputs/example_scan")
    p.add_argument("--from", dest="source", default=None,
                   help="simulate from this NPZ's object, probe and positions")
    p.add_argument("--positions", default="true", choices=POSITION_CHOICES,
                   help="with --from: the positions written with the scan")
    p.add_argument("--position-jitter", type=float, default=0.0,
                   help="with --from: N(0, sigma) px added to the written positions")
    p.add_argument("--probe-defocus", type=float, default=0.0,
                   help="with --from: write the probe out of focus by this many radians at "
                        "the window's edge frequency (a wrong starting probe)")
    p.add_argument("--n-positions", type=int, default=None,
                   help="spiral positions (default 1500); with --from K of the file's "
                        "positions, chosen by --subset (default all)")
    p.add_argument("--subset", default=None, choices=SUBSET_CHOICES,
                   help="with --from and --n-positions K: which K positions (default dense: "
                        "the K nearest the centre of the true positions' bounding box, a "
                        "compact disc of the scan, in the file's order; first: the first K, "
                        "a strip of the scan's first rows)")
    p.add_argument("--layouts", default=None,
                   help=f"comma-separated subset of {', '.join(LAYOUTS)} (default: all; "
                        "'dataset' only with --from)")
    p.add_argument("--N", type=int, default=None,
                   help="pattern size (spiral: default 64; with --from: default the probe's "
                        "size, a larger N prepares the probe by --probe-scale-mode)")
    p.add_argument("--probe-scale-mode", default="pad", choices=PROBE_SCALE_MODES,
                   help="with --from and a larger --N: how the probe is made N x N "
                        "(ptycho/probe_scaling.py; default pad: zero-padded, same pixel size)")
    p.add_argument("--object-size", type=int, default=256, help="spiral only")
    p.add_argument("--step", type=float, default=2.6, help="spiral step in pixels")
    p.add_argument("--jitter", type=float, default=0.7, help="spiral: uniform jitter in pixels")
    p.add_argument("--nphotons", type=float, default=None,
                   help="mean counts per pattern (default 1e6; with --from 1e9)")
    p.add_argument("--bad-pixel-fraction", type=float, default=None,
                   help="default 0.002 (spiral), 0 (--from)")
    p.add_argument("--seed", type=int, default=5)
    return p


def _layouts(a, p) -> tuple[str, ...]:
    default = LAYOUTS if a.source else LAYOUTS[:3]
    chosen = default if a.layouts is None else tuple(s.strip() for s in a.layouts.split(",") if s.strip())
    bad = [s for s in chosen if s not in default]
    if bad or not chosen:
        p.error(f"--layouts {a.layouts!r}: {', '.join(bad) or 'empty'} is not allowed "
                f"(allowed: {', '.join(default)})")
    return chosen


MAX_NPHOTONS = 1e15   # the studies' bound (SimulationConfig.nphotons)


def _check_values(a) -> None:
    """One-line ValueError for a value no simulation can use, before anything runs."""
    if not (math.isfinite(a.nphotons) and 0 < a.nphotons <= MAX_NPHOTONS):
        raise ValueError(f"--nphotons {a.nphotons:g} is out of range (allowed: > 0 and <= "
                         f"{MAX_NPHOTONS:g} mean counts per pattern)")
    if a.n_positions is not None and a.n_positions < 1:
        raise ValueError(f"--n-positions {a.n_positions} is out of range (allowed: >= 1)")
    if not 0 <= a.bad_pixel_fraction < 1:
        raise ValueError(f"--bad-pixel-fraction {a.bad_pixel_fraction:g} is out of range "
                         "(allowed: >= 0 and < 1)")


def _simulate(a):
    if a.source:
        return simulate_from_file(
            a.source, nphotons=a.nphotons, positions=a.positions, jitter_px=a.position_jitter,
            n_positions=a.n_positions or 0, subset=a.subset or "dense", seed=a.seed,
            bad_pixel_fraction=a.bad_pixel_fraction, probe_defocus=a.probe_defocus,
            N=a.N or 0, probe_scale_mode=a.probe_scale_mode)
    N = a.N or 64
    obj = make_object(a.object_size, int(400 * (a.object_size / 392) ** 2),
                      np.random.default_rng(a.seed), True)
    scan = simulate_spiral_scan(obj, N, a.n_positions or 1500, a.step, a.jitter,
                                two_mode_probe(N), a.nphotons, a.seed, a.bad_pixel_fraction)
    return scan, None


def _write(out: Path, layouts, scan, truth) -> list[Path]:
    """Every chosen layout and ``truth.npz`` into ``out`` (a folder being written)."""
    geometry = conventional_geometry(scan.N)
    dataset = dataset_arrays(scan, truth) if "dataset" in layouts else None
    files = []
    if "npz" in layouts:
        files.append(write_ptychopinn_npz(out / "scan_ptychopinn.npz", scan))
    if "ptychodus" in layouts:
        files.extend(write_ptychodus(out / "ptychodus", scan, geometry, product_name="product.h5",
                                     object_frame="scan"))
    if "cxi" in layouts:
        files.append(write_cxi(out / "scan.cxi", scan, geometry))
    if dataset is not None:
        files.append(save_dataset(out / "dataset.npz", *dataset))
    true_xy = scan.positions_px if truth is None else truth.positions_px
    np.savez(out / "truth.npz", object=scan.object, positions_px=true_xy,
             written_positions_px=scan.positions_px,
             probe=scan.probe if truth is None else truth.probe)
    return files


def main(argv=None) -> int:
    """Exit codes: 0 written; 2 refused (one ``error:`` line, ``--output-dir`` as it was)."""
    p = build_parser()
    a = p.parse_args(argv)
    layouts = _layouts(a, p)
    if not a.source and (a.positions != "true" or a.position_jitter or a.probe_defocus
                         or a.probe_scale_mode != "pad" or a.subset is not None):
        p.error("--positions, --position-jitter, --probe-defocus, --probe-scale-mode and "
                "--subset need --from FILE")
    if a.nphotons is None:
        a.nphotons = 1e9 if a.source else 1e6
    if a.bad_pixel_fraction is None:
        a.bad_pixel_fraction = 0.0 if a.source else 0.002
    out = Path(a.output_dir)
    try:
        _check_values(a)
        if out.exists() and not out.is_dir():
            raise ValueError(f"--output-dir {str(out)!r} is a file (allowed: a directory path)")
        scan, truth = _simulate(a)
        with atomic_dir(out, owned=OUTPUT_NAMES) as tmp:
            files = [out / Path(f).relative_to(tmp) for f in _write(tmp, layouts, scan, truth)]
    except (OSError, ValueError) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    true_xy = scan.positions_px if truth is None else truth.positions_px
    span = np.ptp(true_xy, axis=0)
    err = np.sqrt(np.mean(np.sum((scan.positions_px - true_xy) ** 2, axis=1)))
    print(f"{scan.n} positions spanning {span[0]:.0f} x {span[1]:.0f} px; N = {scan.N}; mean "
          f"counts per pattern {scan.counts.sum((1, 2)).mean():.3g}; written positions "
          f"{err:.3f} px RMS from the true ones")
    for f in files:
        print(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
