"""What a study reads from the user's files: a dataset, or just a probe.

- :func:`read_dataset`: any supported scan file (this project's NPZ, an upstream
  PtychoPINN / Ptychodus-export NPZ, a Ptychodus ``diffraction.h5`` with its product, a
  CXI file), detected by content, as a :class:`ptycho.dataset.PtychoDataset`.
- :func:`read_probe`: the probe of any of those files or of a Ptychodus product alone.
- :func:`fit_probe`: a probe fitted to the pattern size N, by this rule: a probe of size
  N is kept; a smaller one is zero-padded symmetrically (its centre stays at pixel N//2);
  a larger one is cut to its central N x N window, which is refused when that window
  keeps less than 99 % of the probe's intensity (resampling would change the pixel size,
  so it is never done).
"""
from __future__ import annotations

import os

import numpy as np

from ptycho.dataset import PtychoDataset


def read_dataset(path: str | os.PathLike, *, N: int | None = None, gridsize: int = 1,
                 unit: str = "auto") -> PtychoDataset:
    """Any supported scan file as a validated, channel-first dataset."""
    from ptycho.formats import detect_format, read_scan
    from ptycho.io import load_dataset
    if detect_format(path) == "project_npz":
        return load_dataset(path, expect_N=N, expect_gridsize=gridsize)
    return read_scan(path, unit=unit).to_dataset(gridsize=gridsize, N=N)


def read_probe(path: str | os.PathLike) -> np.ndarray:
    """The probe (modes, H, W) complex64 of any supported file."""
    from ptycho.formats import detect_format, read_scan
    from ptycho.formats.ptychodus import read_product
    try:
        fmt = detect_format(path)
    except ValueError:
        fmt = None
    if fmt is None:  # a Ptychodus product alone (HDF5 or NPZ) holds a probe too
        probe = read_product(path).get("probe")
        if probe is None:
            raise ValueError(f"dataset '{path}': key 'probe' is missing (expected a probe)")
    elif fmt == "project_npz":
        from ptycho.io import load_dataset
        probe = load_dataset(path).probe
    else:
        probe = read_scan(path).probe
        if probe is None:
            raise ValueError(f"dataset '{path}': key 'probe' is missing (expected a file "
                             "that holds a probe)")
    probe = np.asarray(probe, dtype=np.complex64)
    return probe[None] if probe.ndim == 2 else probe


def fit_probe(probe: np.ndarray, N: int) -> np.ndarray:
    """``probe`` (modes, H, W) fitted to (N, N) (or (modes, N, N)); see the module rule."""
    p = np.asarray(probe, dtype=np.complex64)
    p = p[None] if p.ndim == 2 else p
    H, W = p.shape[-2:]
    if H != W:
        raise ValueError(f"probe has shape {p.shape} (expected square modes (modes, H, H))")
    if H < N:
        lo = N // 2 - H // 2
        out = np.zeros(p.shape[:-2] + (N, N), np.complex64)
        out[..., lo:lo + H, lo:lo + H] = p
    elif H > N:
        lo = H // 2 - N // 2
        out = p[..., lo:lo + N, lo:lo + N]
        kept = float(np.sum(np.abs(out) ** 2) / max(np.sum(np.abs(p) ** 2), 1e-300))
        if kept < 0.99:
            raise ValueError(f"probe of size {H} keeps only {100 * kept:.1f} % of its intensity "
                             f"in the central {N} x {N} window (expected >= 99 %; choose N >= "
                             f"{H} or a probe that fits)")
    else:
        out = p
    out = np.ascontiguousarray(out)
    return out[0] if out.shape[0] == 1 else out
