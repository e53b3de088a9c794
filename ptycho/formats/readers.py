"""What a study reads from the user's files: a dataset, or just a probe.

- :func:`read_dataset`: any supported scan file (this project's NPZ, an upstream
  PtychoPINN / Ptychodus-export NPZ, a Ptychodus ``diffraction.h5`` with its product, a
  CXI file), detected by content, as a :class:`ptycho.dataset.PtychoDataset`.
- :func:`read_probe`: the probe of any of those files or of a Ptychodus product alone
  (a study fits it to its pattern size with :func:`ptycho.probes.fit_probe`).
"""
from __future__ import annotations

import os

import numpy as np

from ptycho.dataset import PtychoDataset
from ptycho.formats import PRODUCT_KEYS, check_cxi_sign, detect_format, read_scan
from ptycho.formats.checks import check_finite
from ptycho.formats.ptychodus_product import read_product
from ptycho.formats.ptychopinn_npz import PATTERN_KEYS, npz_keys
from ptycho.io import load_dataset


def read_dataset(path: str | os.PathLike, *, N: int | None = None, gridsize: int = 1,
                 unit: str = "auto", cxi_translation_sign: int = 1, k_nearest: int = 0,
                 groups_per_position: int = 1) -> PtychoDataset:
    """Any supported scan file as a validated, channel-first dataset
    (``cxi_translation_sign``: see :func:`ptycho.formats.read_scan`; ``k_nearest``,
    ``groups_per_position``: the draw of the gridsize-2 groups, see
    :meth:`ptycho.formats.raw_scan.RawScan.to_dataset`; a project NPZ, grouped when it
    was written, takes the defaults only)."""
    fmt = detect_format(path)
    if fmt == "project_npz":
        check_cxi_sign(str(path), fmt, cxi_translation_sign)
        if k_nearest != 0 or groups_per_position != 1:
            name, value = (("k_nearest", k_nearest) if k_nearest != 0
                           else ("groups_per_position", groups_per_position))
            raise ValueError(f"dataset '{path}': {name}={value} needs a raw scan file (this "
                             "project's NPZ holds the groups made when it was written; allowed "
                             "here: k_nearest=0, groups_per_position=1)")
        return load_dataset(path, expect_N=N, expect_gridsize=gridsize)
    return read_scan(path, unit=unit, cxi_translation_sign=cxi_translation_sign).to_dataset(
        gridsize=gridsize, N=N, k_nearest=k_nearest, groups_per_position=groups_per_position)


def read_probe(path: str | os.PathLike) -> np.ndarray:
    """The probe (modes, H, W) complex64 of any supported file.

    A file with patterns gives the probe of its scan. A file without patterns gives its
    probe by this rule: a Ptychodus product (HDF5 or NPZ, ``probe_position_*`` keys) its
    ``probe``; any other NPZ its ``probeGuess`` (as the upstream repository ships its
    experimental probes, alone or beside ``objectGuess`` and positions), else its
    ``probe``.
    """
    path = str(path)
    if _is_npz(path):
        keys = set(npz_keys(path))
        if not keys & {*PATTERN_KEYS, "patterns"} and not keys & set(PRODUCT_KEYS):
            return _as_modes(_npz_probe(path, keys))
    try:
        fmt = detect_format(path)
    except ValueError:
        fmt = None
    if fmt is None:  # a Ptychodus product alone (HDF5 or NPZ) holds a probe too
        probe = read_product(path).get("probe")
        if probe is None:
            raise ValueError(f"dataset '{path}': key 'probe' is missing (expected a probe)")
    elif fmt == "project_npz":
        probe = load_dataset(path).probe
    else:
        probe = read_scan(path).probe
        if probe is None:
            raise ValueError(f"dataset '{path}': key 'probe' is missing (expected a file "
                             "that holds a probe)")
    return _as_modes(probe)


def _is_npz(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"PK"
    except OSError:
        return False  # detect_format gives the one-line refusal


def _npz_probe(path: str, keys: set[str]) -> np.ndarray:
    """``probeGuess`` (else ``probe``) of an NPZ without patterns, never unpickled."""
    key = next((k for k in ("probeGuess", "probe") if k in keys), None)
    if key is None:
        raise ValueError(f"dataset '{path}': key 'probeGuess' is missing (NPZ keys "
                         f"{sorted(keys)[:12]}; expected probeGuess or probe, (H, W) or "
                         "(modes, H, W) complex)")
    try:
        with np.load(path, allow_pickle=False) as d:
            probe = np.asarray(d[key])
    except ValueError as err:
        raise ValueError(f"dataset '{path}': key '{key}' cannot be read "
                         f"({str(err).splitlines()[0]}) (expected a numeric array; data "
                         "files are never unpickled)") from None
    if probe.ndim not in (2, 3) or not np.issubdtype(probe.dtype, np.number):
        raise ValueError(f"dataset '{path}': key '{key}' has shape {probe.shape} and dtype "
                         f"{probe.dtype} (expected (H, W) or (modes, H, W) complex)")
    check_finite(path, key, probe)
    return probe


def _as_modes(probe) -> np.ndarray:
    probe = np.asarray(probe, dtype=np.complex64)
    return probe[None] if probe.ndim == 2 else probe

