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
``dataset '<path>': key '<key>' <what is wrong> (expected <what is allowed>)``.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ptycho.artifacts import atomic_path
from ptycho.dataset import PtychoDataset

__all__ = ["load_dataset", "save_dataset", "METADATA_KEY"]

METADATA_KEY = "_metadata"

_PER_PATTERN_IMAGE_KEYS = ("Y_I", "Y_phi")
_COORD_KEYS = ("coords_nominal", "coords_offsets")


class _Checker:
    """Builds the one-line error messages for one dataset path."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, key: str, what: str, expected: str) -> ValueError:
        return ValueError(f"dataset '{self.path}': key '{key}' {what} (expected {expected})")

    # -- dtype helpers -------------------------------------------------------------
    def real(self, key: str, arr: np.ndarray) -> np.ndarray:
        """Cast a real numeric array (float / int / uint) to float32; refuse others."""
        kind = arr.dtype.kind
        if kind == "c":
            raise self.fail(key, f"has complex dtype {arr.dtype}", "a real float or integer dtype")
        if kind not in "fiu":
            raise self.fail(key, f"has dtype {arr.dtype}", "a real float or integer dtype")
        out = arr.astype(np.float32, copy=False)
        self.finite(key, out)
        return out

    def complex_(self, key: str, arr: np.ndarray) -> np.ndarray:
        """Cast a numeric array (complex / float / int) to complex64; refuse others."""
        if arr.dtype.kind not in "fiuc":
            raise self.fail(key, f"has dtype {arr.dtype}", "a complex (or real numeric) dtype")
        out = arr.astype(np.complex64, copy=False)
        self.finite(key, out)
        return out

    def finite(self, key: str, arr: np.ndarray) -> None:
        if arr.size and not np.isfinite(arr).all():
            n_nan = int(np.isnan(arr).sum())
            n_inf = int(arr.size - np.isfinite(arr).sum() - n_nan)
            raise self.fail(key, f"contains non-finite values ({n_nan} NaN, {n_inf} Inf)",
                            "finite values only")


def _read_npz(path: Path, chk: _Checker) -> dict[str, np.ndarray]:
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


def _shape(a: np.ndarray) -> str:
    return "(" + ", ".join(str(s) for s in a.shape) + ")"


def _per_pattern_images(key: str, arr: np.ndarray, chk: _Checker, n: int, N: int, C: int
                        ) -> np.ndarray:
    """Validate a (n,N,N[,C]) real array and return it channel-first (n,C,N,N) float32."""
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4:
        raise chk.fail(key, f"has shape {_shape(arr)} (ndim {arr.ndim})",
                       f"(n, N, N, C) = ({n}, {N}, {N}, {C}) or (n, N, N)")
    if arr.shape[0] != n:
        raise chk.fail(key, f"has {arr.shape[0]} patterns",
                       f"{n}, as in 'diffraction'")
    if arr.shape[1:] != (N, N, C):
        raise chk.fail(key, f"has shape {_shape(arr)}",
                       f"({n}, {N}, {N}, {C}) to match 'diffraction'")
    arr = chk.real(key, arr)
    return np.ascontiguousarray(np.moveaxis(arr, -1, 1))


def _indices(key: str, arr: np.ndarray, chk: _Checker, shape: tuple, allowed: str
             ) -> np.ndarray:
    """An index array of ``shape``: integer dtype, no negative values; as int64."""
    if arr.shape != shape:
        raise chk.fail(key, f"has shape {_shape(arr)}", allowed)
    if arr.dtype.kind not in "iu":
        raise chk.fail(key, f"has dtype {arr.dtype}", "an integer dtype")
    if (arr < 0).any():
        raise chk.fail(key, "has negative values", "indices >= 0")
    return arr.astype(np.int64)


def _coords(key: str, arr: np.ndarray, chk: _Checker, n: int, C: int) -> np.ndarray:
    """Validate coordinates (n,1,2,C) or (n,2) [C=1]; return (n,C,1,2) float32."""
    allowed = f"(n, 1, 2, C) = ({n}, 1, 2, {C})" + (f" or (n, 2) = ({n}, 2)" if C == 1 else "")
    if arr.ndim == 2:
        if arr.shape[1] != 2 or C != 1:
            raise chk.fail(key, f"has shape {_shape(arr)}", allowed)
        if arr.shape[0] != n:
            raise chk.fail(key, f"has {arr.shape[0]} patterns", f"{n}, as in 'diffraction'")
        arr = chk.real(key, arr)
        return np.ascontiguousarray(arr.reshape(n, 1, 1, 2))
    if arr.ndim != 4:
        raise chk.fail(key, f"has shape {_shape(arr)} (ndim {arr.ndim})", allowed)
    if arr.shape[0] != n:
        raise chk.fail(key, f"has {arr.shape[0]} patterns", f"{n}, as in 'diffraction'")
    if arr.shape[1:] != (1, 2, C):
        raise chk.fail(key, f"has shape {_shape(arr)}", allowed)
    arr = chk.real(key, arr)
    return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))


def _diffraction(raw: dict, chk: _Checker, expect_N, expect_gridsize) -> tuple[np.ndarray, int, int, int]:
    """``diffraction`` channel-first (n, C, N, N) float32 >= 0, and its n, N, C."""
    if "diffraction" not in raw:
        raise chk.fail("diffraction", "is missing", "a (n, N, N, C) or (n, N, N) float32 array")
    d = raw["diffraction"]
    if d.ndim == 3:
        d = d[..., None]
    if d.ndim != 4:
        raise chk.fail("diffraction", f"has shape {_shape(d)} (ndim {d.ndim})", "(n, N, N, C) or (n, N, N)")
    n, N, N2, C = d.shape
    if n == 0:
        raise chk.fail("diffraction", "is empty (0 patterns)", "at least 1 pattern")
    if N != N2 or N == 0:
        raise chk.fail("diffraction", f"has non-square patterns of shape {_shape(d)}",
                       "(n, N, N, C) with N >= 1")
    if C == 0:
        raise chk.fail("diffraction", f"has 0 channels, shape {_shape(d)}", "C = gridsize**2 >= 1")
    g = math.isqrt(C)
    if g * g != C:
        raise chk.fail("diffraction", f"has C = {C} channels, not a perfect square",
                       "C = gridsize**2, e.g. 1 or 4")
    if expect_gridsize is not None and g != expect_gridsize:
        raise chk.fail("diffraction", f"has C = {C} channels (gridsize {g})",
                       f"gridsize {expect_gridsize}, C = {expect_gridsize ** 2}")
    if expect_N is not None and N != expect_N:
        raise chk.fail("diffraction", f"has pattern size N = {N}", f"N = {expect_N}")
    d = chk.real("diffraction", d)
    n_neg = int((d < 0).sum())
    if n_neg:
        raise chk.fail("diffraction", f"has {n_neg} negative values (min {float(d.min()):.3g})",
                       "amplitudes >= 0")
    return np.ascontiguousarray(np.moveaxis(d, -1, 1)), n, N, C


def _probe(raw: dict, chk: _Checker, N: int) -> np.ndarray:
    """``probeGuess`` (N, N) or (modes, N, N) complex64 (a single mode squeezed)."""
    if "probeGuess" not in raw:
        raise chk.fail("probeGuess", "is missing", f"a ({N}, {N}) complex64 array")
    pr = raw["probeGuess"]
    if pr.ndim not in (2, 3) or pr.shape[-2:] != (N, N) or (pr.ndim == 3 and pr.shape[0] < 1):
        raise chk.fail("probeGuess", f"has shape {_shape(pr)}",
                       f"({N}, {N}), or (modes, {N}, {N}), to match 'diffraction' N = {N}")
    return chk.complex_("probeGuess", pr[0] if pr.ndim == 3 and pr.shape[0] == 1 else pr)


def _ground_truth(raw: dict, chk: _Checker, require: bool) -> dict[str, np.ndarray]:
    """``YY_ground_truth`` (H, W) and ``YY_ground_truth_all`` (K, H, W) complex64, when present."""
    out: dict[str, np.ndarray] = {}
    if "YY_ground_truth" in raw:
        gt = raw["YY_ground_truth"]
        if gt.ndim == 3 and gt.shape[-1] == 1:
            gt = gt[..., 0]
        if gt.ndim != 2 or min(gt.shape) == 0:
            raise chk.fail("YY_ground_truth", f"has shape {_shape(raw['YY_ground_truth'])}",
                           "(H, W, 1) or (H, W) with H, W >= 1")
        out["YY_ground_truth"] = chk.complex_("YY_ground_truth", gt)
    elif require:
        raise chk.fail("YY_ground_truth", "is missing",
                       "a (H, W, 1) complex64 ground-truth object (test split)")
    if "YY_ground_truth_all" in raw:
        gta = raw["YY_ground_truth_all"]
        if gta.ndim != 3 or min(gta.shape) == 0:
            raise chk.fail("YY_ground_truth_all", f"has shape {_shape(gta)}",
                           "(K, H, W) with K, H, W >= 1")
        out["YY_ground_truth_all"] = chk.complex_("YY_ground_truth_all", gta)
    return out


def _norm_Y_I(raw: dict, chk: _Checker) -> float:
    """``norm_Y_I``: a positive scalar (1.0 if absent)."""
    if "norm_Y_I" in raw:
        nv = raw["norm_Y_I"]
        if nv.size != 1:
            raise chk.fail("norm_Y_I", f"has shape {_shape(nv)}", "a scalar")
        nv = chk.real("norm_Y_I", nv.reshape(()))
        if not float(nv) > 0:
            raise chk.fail("norm_Y_I", f"is {float(nv)!r}", "a positive scalar")
        return float(nv)
    return 1.0


def _metadata(raw: dict, chk: _Checker) -> dict:
    """``_metadata``: a 0-d string holding a JSON object (``{}`` if absent)."""
    if METADATA_KEY in raw:
        m = raw[METADATA_KEY]
        if m.dtype.kind not in "US" or m.size != 1:
            raise chk.fail(METADATA_KEY, f"has dtype {m.dtype} and shape {_shape(m)}",
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
    chk = _Checker(str(path))
    raw = _read_npz(p, chk)
    diffraction, n, N, C = _diffraction(raw, chk, expect_N, expect_gridsize)
    probe = _probe(raw, chk, N)
    labels = {key: _per_pattern_images(key, raw[key], chk, n, N, C)
              for key in _PER_PATTERN_IMAGE_KEYS if key in raw}
    coords = {key: _coords(key, raw[key], chk, n, C) if key in raw
              else np.zeros((n, C, 1, 2), np.float32) for key in _COORD_KEYS}
    truth = _ground_truth(raw, chk, require_ground_truth)
    norm = _norm_Y_I(raw, chk)
    object_index = (_indices("object_index", raw["object_index"], chk, (n,), f"({n},)")
                    if "object_index" in raw else np.zeros(n, np.int64))
    pattern_index = (_indices("pattern_index", raw["pattern_index"], chk, (n, C),
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
            np.savez(fh, **payload)
    return dest
