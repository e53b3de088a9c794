"""What Ptychodus hands this back end, as the project's datasets.

- :func:`read_training_dir`: the folder Ptychodus trains from (``ptychodus -b train -i
  DIR``, or the GUI's training-data folder). It holds the NPZ that Ptychodus' exporter
  writes (``save_ptychopinn_training_data``: ``xcoords``, ``ycoords`` in object pixels,
  ``diff3d`` intensities with bad pixels inpainted, ``bad_pixels``, ``probeGuess`` (modes,
  H, W), ``objectGuess``, ``scan_index``), or the ``diffraction.h5`` + ``product.h5`` pair
  of its batch layout. Exported NPZ files are preferred; several are read as several scans
  of one sample measured with one probe and trained together.
- :func:`scan_from_arrays`: the arrays of ``PtychoDataLoader.from_np`` (patterns,
  probe, positions as (row, column) in the input object's pixels).

Units: Ptychodus patterns are detector intensities (counts), whatever their dtype (the
exporter's inpainted floats are not integers), so they are read as counts:
amplitude = sqrt(counts), photon scale 1, and the Poisson loss compares the model's
``|F{O P}|^2`` with the counts themselves. Bad pixels (the exporter's ``bad_pixels``, the
diffraction file's mask) are zeroed and excluded from the loss.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ptycho.config.validation import StudyError
from ptycho.dataset import PtychoDataset
from ptycho.formats import detect_format, read_scan
from ptycho.formats.ptychodus import read_ptychodus
from ptycho.formats.raw_scan import RawScan
from ptycho.formats.validation import make_raw_scan

__all__ = ["merge_scans", "read_training_dir", "scan_from_arrays", "select_in_bounds",
           "training_files"]

_LAYOUTS = ("an exported training NPZ (Ptychodus' 'Export training data'), or diffraction.h5 "
            "with product.h5")


def training_files(data_dir) -> list[Path]:
    """The files :func:`read_training_dir` reads in ``data_dir``, or a one-line refusal."""
    d = Path(data_dir)
    if not d.is_dir():
        raise StudyError(f"training data folder '{d}': is not a folder (allowed: {_LAYOUTS})")
    npz = [p for p in sorted(d.glob("*.npz")) if _is_export(p)]
    if npz:
        return npz
    pair = [d / "diffraction.h5", d / "product.h5"]
    if all(p.is_file() for p in pair):
        return pair
    raise StudyError(f"training data folder '{d}': holds no training data (allowed: {_LAYOUTS})")


def _is_export(path: Path) -> bool:
    try:
        return detect_format(path) == "ptychopinn_npz"
    except ValueError:
        return False


def read_training_dir(data_dir, N: int) -> list[RawScan]:
    """The scans of ``data_dir`` (see the module docstring), read as counts; the pattern
    size must be ``N`` (``model_size``) and every scan must share one probe."""
    files = training_files(data_dir)
    if files[0].suffix == ".h5":
        scans = [read_ptychodus(files[0], files[1], unit="counts")]
    else:
        scans = [read_scan(p, unit="counts") for p in files]
    for s in scans:
        if s.N != N:
            raise StudyError(f"PtychoPINNTorchData.model_size={N} does not match the "
                             f"{s.N} x {s.N} patterns of '{s.path}' (allowed: {s.N})")
        if s.probe is None:
            raise StudyError(f"dataset '{s.path}': key '{s.key('probe')}' is missing "
                             "(expected the probe Ptychodus exported)")
    first = scans[0]
    for s in scans[1:]:
        if s.probe.shape != first.probe.shape or not np.allclose(s.probe, first.probe,
                                                                 rtol=1e-4, atol=0):
            raise StudyError(f"dataset '{s.path}': its probe differs from that of "
                             f"'{first.path}' (allowed: scans measured with one probe; train "
                             "one model per probe)")
    return scans


def scan_from_arrays(diff_patterns, probe, positions_rc) -> RawScan:
    """The scan of ``PtychoDataLoader.from_np``: ``positions_rc`` (n, 2) are (row, column)
    in the input object's pixels; returned as the project's (x, y) = (column, row)."""
    pos = np.asarray(positions_rc, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise StudyError(f"positions: shape {pos.shape} (expected (n, 2) (row, column) "
                         "object pixels)")
    return make_raw_scan("<ptychodus input>", "ptychodus_arrays", np.asarray(diff_patterns),
                         pos[:, ::-1].copy(), unit="counts",
                         keys={"patterns": "diff_patterns", "positions": "positions",
                               "probe": "probe"},
                         probe=np.asarray(probe))


def select_in_bounds(scan: RawScan, bounds) -> RawScan:
    """The positions of ``scan`` inside ``bounds = ((x_lo, x_hi), (y_lo, y_hi))``, fractions
    of its x and y ranges (Ptychodus' ``x_bounds`` / ``y_bounds``: upstream trains only on
    them); a one-line refusal when fewer than 4 remain."""
    pos = scan.positions_px
    keep = np.ones(scan.n, bool)
    for ax, (lo, hi) in enumerate(bounds):
        v = pos[:, ax]
        vmin, span = float(v.min()), float(v.max() - v.min())
        keep &= (v >= vmin + lo * span - 1e-9) & (v <= vmin + hi * span + 1e-9)
    if keep.all():
        return scan
    if keep.sum() < 4:
        raise StudyError(f"dataset '{scan.path}': {int(keep.sum())} of {scan.n} positions lie "
                         f"inside PtychoPINNTorchData x_bounds {bounds[0]} / y_bounds "
                         f"{bounds[1]} (allowed: bounds that keep at least 4)")
    return replace(scan, patterns=scan.patterns[keep], positions_px=pos[keep],
                   scan_index=scan.scan_index[keep],
                   notes=scan.notes + [f"trained on the {int(keep.sum())} of {scan.n} "
                                       "positions inside x_bounds / y_bounds"])


def merge_scans(datasets: list[PtychoDataset]) -> PtychoDataset:
    """One training dataset of several scans' datasets (same probe, same N): groups are
    concatenated, scan ``k`` is object ``k``, and a pixel bad in any scan is bad in all
    (zeroed and excluded from the loss). Groups never mix scans, so the overlap
    constraint only ever merges patches of one scan."""
    if len(datasets) == 1:
        return datasets[0]
    bad = [d.bad_pixels for d in datasets if d.bad_pixels is not None]
    union = np.logical_or.reduce(bad) if bad else None
    diff = np.concatenate([d.diffraction for d in datasets])
    if union is not None:
        diff[:, :, union] = 0.0
    ids, start = [], 0
    for d in datasets:
        own = d.pattern_ids()
        ids.append(own + start)
        start += int(own.max()) + 1
    first = datasets[0]
    meta = dict(first.metadata, n_patterns=start,
                sources=[d.metadata.get("source_path", d.path) for d in datasets])
    return replace(first, diffraction=diff,
                   coords_nominal=np.concatenate([d.coords_nominal for d in datasets]),
                   coords_offsets=np.concatenate([d.coords_offsets for d in datasets]),
                   object_index=np.concatenate([np.full(d.n, k, np.int64)
                                                for k, d in enumerate(datasets)]),
                   pattern_index=np.concatenate(ids), metadata=meta, bad_pixels=union,
                   ground_truth=None, ground_truth_all=None, Y_I=None, Y_phi=None)
