"""Dataset NPZ read / write with strict validation (numpy only).

On disk (NPZ, reference-compatible, channel-LAST):

==================== ======================== =========================================
key                  shape                    dtype
==================== ======================== =========================================
``diffraction``      (n, N, N, C) or (n, N, N) float32, >= 0 (sqrt(counts)/scale)
``Y_I``, ``Y_phi``   same as diffraction      float32 (optional labels)
``coords_nominal``   (n, 1, 2, C) or (n, 2)   float32, (x, y) patch offset from group centre
``coords_offsets``   (n, 1, 2, C) or (n, 2)   float32, (x, y) group centre in object pixels
``probeGuess``       (N, N) or (K, N, N)      complex64 (required; K incoherent modes)
``YY_ground_truth``  (H, W, 1) or (H, W)      complex64 (optional; test object 0)
``YY_ground_truth_all`` (K, H, W)             complex64 (optional; every test object)
``norm_Y_I``         scalar                   float32 (optional, default 1.0)
``object_index``     (n,)                     int32 (optional, default zeros)
``pattern_index``    (n, C)                   int64 (optional; which measured pattern each
                                              patch is, see PtychoDataset.pattern_ids)
``_metadata``        0-d str                  JSON object (optional, default {})
==================== ======================== =========================================

The (n, 2) coordinate form is only accepted with C = 1. Coordinates are (x, y) =
(column, row). Files written by the original PtychoPINN code stored ``coords_offsets``
as (y, x); nothing in such a file says so, so loading one gives swapped offsets (harmless
for gridsize 1 grid-tile stitching, which does not use them).

In memory (:func:`load_dataset`) everything per-pattern is channel-FIRST:
``diffraction`` / ``Y_I`` / ``Y_phi`` (n, C, N, N) float32 and coordinates (n, C, 1, 2).

Every defect raises ``ValueError`` with one line:
``dataset '<path>': key '<key>' <what is wrong> (expected <what is allowed>)``. The
validators of the keys are in :mod:`ptycho.dataset_validation`.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ptycho.artifacts import atomic_path
from ptycho.dataset import PtychoDataset
from ptycho.dataset_validation import (
    Checker,
    check_coords,
    check_diffraction,
    check_ground_truth,
    check_indices,
    check_norm_Y_I,
    check_per_pattern_images,
    check_probe,
    shape_text,
)

__all__ = ["load_dataset", "save_dataset", "METADATA_KEY"]

METADATA_KEY = "_metadata"

_PER_PATTERN_IMAGE_KEYS = ("Y_I", "Y_phi")
_COORD_KEYS = ("coords_nominal", "coords_offsets")


def _read_npz(path: Path, chk: Checker) -> dict[str, np.ndarray]:
    """Read every array of an NPZ eagerly (so truncation errors surface here)."""
    def cannot(reason: str) -> ValueError:
        return ValueError(f"dataset '{chk.path}': cannot read NPZ: {reason} "
                          "(expected a readable .npz archive written by numpy.savez)")

    if not path.exists():
        raise cannot("file does not exist")
    if not path.is_file():
        raise cannot("not a regular file")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise cannot(f"{type(exc).__name__}: {exc}") from None
    if magic.startswith(b"\x93NUMPY"):
        raise cannot("file holds a single .npy array, not an NPZ archive")
    if not magic.startswith(b"PK"):
        what = "file is empty" if not magic else f"not a zip archive (starts with {magic!r})"
        raise cannot(what)
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any read failure becomes one message
        raise cannot(f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise cannot(f"file holds a single {type(loaded).__name__}, not an NPZ archive")
    data: dict[str, np.ndarray] = {}
    try:
        with loaded:
            for key in loaded.files:
                try:
                    data[key] = loaded[key]
                except Exception as exc:  # noqa: BLE001
                    msg = f"{type(exc).__name__}: {exc}".splitlines()[0]
                    raise cannot(f"key '{key}': {msg}") from None
    except zipfile.BadZipFile as exc:
        raise cannot(f"BadZipFile: {exc}") from None
    return data


def _metadata(raw: dict, chk: Checker) -> dict:
    """``_metadata``: a 0-d string holding a JSON object (``{}`` if absent)."""
    if METADATA_KEY in raw:
        m = raw[METADATA_KEY]
        if m.dtype.kind not in "US" or m.size != 1:
            raise chk.fail(METADATA_KEY, f"has dtype {m.dtype} and shape {shape_text(m)}",
                           "a 0-d string array holding a JSON object")
        text = m.reshape(()).item()
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        try:
            meta = json.loads(text)
        except json.JSONDecodeError as exc:
            raise chk.fail(METADATA_KEY, f"is not valid JSON ({exc})", "a JSON object") from None
        if not isinstance(meta, dict):
            raise chk.fail(METADATA_KEY, f"is a JSON {type(meta).__name__}", "a JSON object")
        return meta
    return {}


def load_dataset(path: str | os.PathLike, *, expect_N: int | None = None,
                 expect_gridsize: int | None = None,
                 require_ground_truth: bool = False) -> PtychoDataset:
    """Load and validate a ptychography NPZ; return channel-first arrays.

    Returns a :class:`ptycho.dataset.PtychoDataset`: ``diffraction`` (n, C, N, N)
    float32 (finite, >= 0); ``coords_nominal`` / ``coords_offsets`` (n, C, 1, 2) float32
    (x, y), zeros if absent; ``probe`` from ``probeGuess`` ((N, N) or (modes, N, N))
    complex64; ``ground_truth`` / ``ground_truth_all`` from ``YY_ground_truth`` (H, W) /
    ``YY_ground_truth_all`` (K, H, W), ``Y_I`` / ``Y_phi`` -- None when absent;
    ``norm_Y_I`` (1.0 if absent), ``object_index`` (n,) int64 (zeros if absent),
    ``metadata`` (parsed ``_metadata`` JSON, ``{}`` if absent). Other keys are ignored.

    Raises:
        ValueError: one line naming the path and key for any defect (unreadable file,
            missing key, wrong shape / dtype, inconsistent n or N, C not a perfect
            square, expectation mismatch, NaN / Inf, negative diffraction, n = 0).
    """
    p = Path(path)
    chk = Checker(str(path))
    raw = _read_npz(p, chk)
    diffraction, n, N, C = check_diffraction(raw, chk, expect_N, expect_gridsize)
    probe = check_probe(raw, chk, N)
    labels = {key: check_per_pattern_images(key, raw[key], chk, n, N, C)
              for key in _PER_PATTERN_IMAGE_KEYS if key in raw}
    coords = {key: check_coords(key, raw[key], chk, n, C) if key in raw
              else np.zeros((n, C, 1, 2), np.float32) for key in _COORD_KEYS}
    truth = check_ground_truth(raw, chk, require_ground_truth)
    norm = check_norm_Y_I(raw, chk)
    object_index = (check_indices("object_index", raw["object_index"], chk, (n,), f"({n},)")
                    if "object_index" in raw else np.zeros(n, np.int64))
    pattern_index = (check_indices("pattern_index", raw["pattern_index"], chk, (n, C),
                                   f"(n, C) = ({n}, {C})") if "pattern_index" in raw else None)
    return PtychoDataset(
        path=str(path), diffraction=diffraction, coords_nominal=coords["coords_nominal"],
        coords_offsets=coords["coords_offsets"], probe=probe, object_index=object_index,
        norm_Y_I=norm, metadata=_metadata(raw, chk),
        ground_truth=truth.get("YY_ground_truth"),
        ground_truth_all=truth.get("YY_ground_truth_all"), Y_I=labels.get("Y_I"),
        Y_phi=labels.get("Y_phi"), pattern_index=pattern_index)


def save_dataset(path: str | os.PathLike, arrays: Mapping[str, Any],
                 metadata: Mapping[str, Any]) -> Path:
    """Write ``arrays`` (channel-LAST, as on disk) plus ``_metadata`` JSON atomically.

    The archive is written uncompressed (``np.savez``) through
    :func:`ptycho.artifacts.atomic_path` (temporary file beside it, fsync, rename):
    readers never see a half-written file.

    Args:
        path: destination file (written exactly there; no ``.npz`` is appended).
        arrays: key -> array-like; no key may be ``_metadata``; object dtypes refused.
        metadata: JSON-serialisable mapping, stored as a 0-d str array under ``_metadata``.

    Returns:
        The destination path.
    """
    dest = Path(path)
    if METADATA_KEY in arrays:
        raise ValueError(f"dataset '{dest}': key '{METADATA_KEY}' given in arrays "
                         "(expected metadata to be passed as the metadata argument)")
    payload: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype.kind == "O":
            raise ValueError(f"dataset '{dest}': key '{key}' has object dtype "
                             "(expected a numeric or string array)")
        payload[key] = arr
    try:
        text = json.dumps(dict(metadata), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"dataset '{dest}': key '{METADATA_KEY}' is not JSON-serialisable "
                         f"({exc}) (expected str / number / bool / list / dict values)") from None
    payload[METADATA_KEY] = np.array(text)
    with atomic_path(dest, ".npz") as tmp:
        with open(tmp, "wb") as fh:
            # numpy's stub matches **payload against savez's allow_pickle: bool
            np.savez(fh, **payload)  # type: ignore[arg-type]
    return dest
