"""The upstream PtychoPINN NPZ (also what Ptychodus exports for PtychoPINN): reader and writer.

Keys (one flat NPZ archive):

================= ============================ ==========================================
key               shape                        meaning
================= ============================ ==========================================
``xcoords``       (n,)                         probe centre x = column, object pixels
``ycoords``       (n,)                         probe centre y = row, object pixels
``diffraction``   (n, H, W), (H, W, n) or      patterns (counts or amplitudes, DC centred);
                  (n, H, W, 1)                 ``diff3d`` is the legacy name
``probeGuess``    (H, W) or (modes, H, W)      complex probe (optional here; needed by
                                               ``to_dataset``)
``objectGuess``   (Ho, Wo)                     complex object (optional)
``scan_index``    (n,)                         integer scan / object of each pattern (opt.)
``bad_pixels``    (H, W)                       bool, True = not measured (optional)
``xcoords_start`` (n,)                         nominal positions; ignored (as is ``Y``)
``ycoords_start``
================= ============================ ==========================================

The (H, W, n) layout is recognised when the last axis has length n = len(xcoords) and the
first does not. Upstream files carry ``_metadata`` as a *pickled* object array. Nothing
here ever unpickles: the archive is opened with ``numpy.load(..., allow_pickle=False)``,
each member's ``.npy`` header is read first, and a member whose dtype holds Python objects
is skipped with a note and a logging warning -- unless it is a required key
(``xcoords``, ``ycoords``, the patterns), which is refused. :func:`write_ptychopinn_npz`
writes a :class:`ptycho.formats.scan_with_truth.ScanWithTruth` in any of these layouts.
"""
from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from ptycho.artifacts import atomic_path
from ptycho.formats.checks import fail
from ptycho.formats.raw_scan import RawScan
from ptycho.formats.scan_with_truth import ScanWithTruth
from ptycho.formats.validation import make_raw_scan

__all__ = [
    "PATTERN_KEYS",
    "is_ptychopinn_npz",
    "npz_keys",
    "read_npz_arrays",
    "read_ptychopinn_npz",
    "save_npz",
    "write_ptychopinn_npz",
]

logger = logging.getLogger(__name__)

PATTERN_KEYS = ("diffraction", "diff3d")
_IGNORED = ("Y", "xcoords_start", "ycoords_start")


def _cannot(path: str, reason: str) -> ValueError:
    return ValueError(f"dataset '{path}': cannot read NPZ: {reason} "
                      "(expected a readable .npz archive written by numpy.savez)")


def npz_keys(path: str | Path) -> list[str]:
    """Member names (without ``.npy``) of an NPZ archive, without reading any array."""
    try:
        with zipfile.ZipFile(path) as zf:
            return [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
    except (OSError, zipfile.BadZipFile) as exc:
        raise _cannot(str(path), f"{type(exc).__name__}: {exc}".splitlines()[0]) from None


def _object_members(path: str) -> set[str]:
    """Keys whose stored dtype holds Python objects (read from the .npy headers only)."""
    found: set[str] = set()
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if not name.endswith(".npy"):
                continue
            with zf.open(name) as fh:
                try:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        _, _, dtype = np.lib.format.read_array_header_1_0(fh)
                    else:
                        _, _, dtype = np.lib.format.read_array_header_2_0(fh)
                except Exception:  # noqa: BLE001 - an unreadable header: the full read reports it
                    continue
            if dtype.hasobject:
                found.add(name[:-4])
    return found


def read_npz_arrays(path: str | Path, required: tuple[str, ...] = ()
                    ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every non-pickled array of an NPZ, plus notes on the pickled ones it skipped.

    Never unpickles: members whose ``.npy`` header declares an object dtype are not read
    at all, and ``numpy.load`` runs with ``allow_pickle=False`` (a pickled member that
    slipped past the header check would raise, and is then skipped the same way).
    A pickled member named in ``required`` is refused with one line.
    """
    path = str(path)
    try:
        pickled = _object_members(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise _cannot(path, f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
    arrays: dict[str, np.ndarray] = {}
    notes: list[str] = []

    def skip(key: str) -> None:
        if key in required:
            raise fail(path, key, "is a pickled object array, which is never unpickled "
                       "(a pickled-only file)", "a plain numeric array saved without pickling")
        msg = f"skipped pickled key '{key}' (never unpickled)"
        notes.append(msg)
        logger.warning("dataset '%s': %s", path, msg)

    try:
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                if key in pickled:
                    skip(key)
                    continue
                try:
                    arrays[key] = z[key]
                except ValueError as exc:
                    if "allow_pickle" in str(exc):
                        skip(key)
                        continue
                    raise _cannot(path, f"key '{key}': {exc}".splitlines()[0]) from None
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - any read failure becomes one refusal line
        raise _cannot(path, f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
    return arrays, notes


def is_ptychopinn_npz(keys: list[str]) -> bool:
    return "xcoords" in keys and "ycoords" in keys and any(k in keys for k in PATTERN_KEYS)


def _patterns_layout(path: str, key: str, d: np.ndarray, n: int, notes: list[str]
                     ) -> np.ndarray:
    """Return (n, H, W) from (n, H, W), (H, W, n) or (n, H, W, 1)."""
    allowed = f"(n, H, W), (H, W, n) or (n, H, W, 1) with n = len(xcoords) = {n}"
    if d.ndim == 4 and d.shape[-1] == 1:
        notes.append(f"'{key}' stored (n, H, W, 1); squeezed")
        d = d[..., 0]
    if d.ndim != 3:
        raise fail(path, key, f"has shape {d.shape} (ndim {d.ndim})", allowed)
    if d.shape[0] == n:
        return d
    if d.shape[2] == n:
        notes.append(f"'{key}' stored (H, W, n); moved the pattern axis first")
        return np.moveaxis(d, 2, 0)
    raise fail(path, key, f"has shape {d.shape} with no pattern axis of length {n} "
               "(patterns and positions of different counts)", allowed)


def read_ptychopinn_npz(path: str | Path, *, unit: str = "auto") -> RawScan:
    """Read an upstream PtychoPINN / Ptychodus-export NPZ (see the module docstring)."""
    path = str(path)
    keys = npz_keys(path)
    pkey = next((k for k in PATTERN_KEYS if k in keys), None)
    if pkey is None:
        raise fail(path, "diffraction", "is missing", "'diffraction' or legacy 'diff3d' patterns")
    arrays, notes = read_npz_arrays(path, required=("xcoords", "ycoords", pkey))
    x = np.asarray(arrays["xcoords"])
    y = np.asarray(arrays["ycoords"])
    if x.ndim != 1:
        raise fail(path, "xcoords", f"has shape {x.shape}", "(n,) probe centres (columns)")
    if y.shape != x.shape:
        raise fail(path, "ycoords", f"has shape {y.shape}",
                   f"{x.shape}, the shape of 'xcoords'")
    n = x.shape[0]
    d = _patterns_layout(path, pkey, np.asarray(arrays[pkey]), n, notes)
    for k in _IGNORED:
        if k in arrays:
            notes.append(f"ignored key '{k}'")
    if "diffraction" in arrays and "diff3d" in arrays:
        notes.append("both 'diffraction' and 'diff3d' present; used 'diffraction'")
    probe = arrays.get("probeGuess")
    if probe is not None and probe.ndim == 4:
        if probe.shape[0] > 1:
            notes.append(f"'probeGuess' has {probe.shape[0]} OPR entries; kept entry 0")
        probe = probe[0]
    if x.dtype.kind not in "fiu":
        raise fail(path, "xcoords", f"has dtype {x.dtype}", "a real integer or float dtype")
    if y.dtype.kind not in "fiu":
        raise fail(path, "ycoords", f"has dtype {y.dtype}", "a real integer or float dtype")
    pos = np.stack([x.astype(np.float64), y.astype(np.float64)], axis=1)
    return make_raw_scan(
        path, "ptychopinn_npz", d, pos, unit=unit,
        keys={"patterns": pkey, "positions": "xcoords", "probe": "probeGuess",
              "bad_pixels": "bad_pixels", "scan_index": "scan_index",
              "object": "objectGuess"},
        probe=probe, bad_pixels=arrays.get("bad_pixels"),
        object_guess=arrays.get("objectGuess"), scan_index=arrays.get("scan_index"),
        notes=notes)


# ----------------------------------------------------------------------------------
# Writer
# ----------------------------------------------------------------------------------

def save_npz(path: str | Path, arrays: dict) -> Path:
    """``numpy.savez`` of ``arrays`` at exactly ``path`` (creating its folder), written
    atomically (:func:`ptycho.artifacts.atomic_path`: a failed write leaves no file)."""
    dest = Path(path)
    with atomic_path(dest) as tmp, open(tmp, "wb") as fh:   # np.savez would append ".npz"
        np.savez(fh, **arrays)
    return dest


def write_ptychopinn_npz(path: str | Path, scan: ScanWithTruth, *, layout: str = "nhw",
                         key: str = "diffraction", extra: dict | None = None) -> Path:
    """Upstream PtychoPINN NPZ: ``xcoords``, ``ycoords`` (+ ``_start``), patterns under
    ``key`` ('diffraction' or legacy 'diff3d') in ``layout`` 'nhw' (n, H, W), 'hwn'
    (H, W, n) or 'nhw1' (n, H, W, 1), ``probeGuess`` ((H, W) for one mode, else
    (modes, H, W)), ``objectGuess``, ``scan_index``, ``bad_pixels``; ``extra`` adds keys.
    """
    d = scan.counts
    if layout == "hwn":
        d = np.ascontiguousarray(np.moveaxis(d, 0, 2))
    elif layout == "nhw1":
        d = d[..., None]
    elif layout != "nhw":
        raise ValueError(f"write_ptychopinn_npz: layout {layout!r} (expected 'nhw', 'hwn' "
                         "or 'nhw1')")
    x, y = scan.positions_px[:, 0], scan.positions_px[:, 1]
    arrays = {
        "xcoords": x, "ycoords": y, "xcoords_start": x, "ycoords_start": y,
        key: d,
        "probeGuess": scan.probe[0] if scan.probe.shape[0] == 1 else scan.probe,
        "objectGuess": scan.object, "scan_index": scan.scan_index,
        "bad_pixels": scan.bad_pixels,
    }
    arrays.update(extra or {})
    return save_npz(path, arrays)
