"""The validators of this project's dataset NPZ (:mod:`ptycho.io`), one per key.

Each takes the raw arrays as stored (channel-LAST, see the table in :mod:`ptycho.io`) and
returns them validated and channel-FIRST, or raises ``ValueError`` with one line built by
:class:`Checker`: ``dataset '<path>': key '<key>' <what is wrong> (expected <what is
allowed>)``. The checks run in the order :func:`ptycho.io.load_dataset` calls them.
"""

from __future__ import annotations

import math

import numpy as np

from ptycho.config.choices import SUPPORTED_N

__all__ = [
    "Checker",
    "pattern_size_advice",
    "check_coords",
    "check_diffraction",
    "check_ground_truth",
    "check_indices",
    "check_norm_Y_I",
    "check_per_pattern_images",
    "check_probe",
    "shape_text",
]


def pattern_size_advice(N: int) -> str:
    """What to do with patterns of size N that differ from the study's --N: pass --N N
    when the study supports that size (``ptycho.config.choices.SUPPORTED_N``), else crop or
    bin the detector to a supported size (either changes the object pixel size)."""
    if N in SUPPORTED_N:
        return f"pass --N {N} to use these patterns"
    sizes = ", ".join(str(n) for n in SUPPORTED_N)
    return (f"a study takes N in {sizes} only, so crop or bin the detector to one of them "
            "before reading (either changes the object pixel size)")


class Checker:
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


def shape_text(a: np.ndarray) -> str:
    return "(" + ", ".join(str(s) for s in a.shape) + ")"


def check_per_pattern_images(key: str, arr: np.ndarray, chk: Checker, n: int, N: int, C: int
                        ) -> np.ndarray:
    """Validate a (n,N,N[,C]) real array and return it channel-first (n,C,N,N) float32."""
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4:
        raise chk.fail(key, f"has shape {shape_text(arr)} (ndim {arr.ndim})",
                       f"(n, N, N, C) = ({n}, {N}, {N}, {C}) or (n, N, N)")
    if arr.shape[0] != n:
        raise chk.fail(key, f"has {arr.shape[0]} patterns",
                       f"{n}, as in 'diffraction'")
    if arr.shape[1:] != (N, N, C):
        raise chk.fail(key, f"has shape {shape_text(arr)}",
                       f"({n}, {N}, {N}, {C}) to match 'diffraction'")
    arr = chk.real(key, arr)
    return np.ascontiguousarray(np.moveaxis(arr, -1, 1))


def check_indices(key: str, arr: np.ndarray, chk: Checker, shape: tuple, allowed: str
             ) -> np.ndarray:
    """An index array of ``shape``: integer dtype, no negative values; as int64."""
    if arr.shape != shape:
        raise chk.fail(key, f"has shape {shape_text(arr)}", allowed)
    if arr.dtype.kind not in "iu":
        raise chk.fail(key, f"has dtype {arr.dtype}", "an integer dtype")
    if (arr < 0).any():
        raise chk.fail(key, "has negative values", "indices >= 0")
    return arr.astype(np.int64)


def check_coords(key: str, arr: np.ndarray, chk: Checker, n: int, C: int) -> np.ndarray:
    """Validate coordinates (n,1,2,C) or (n,2) [C=1]; return (n,C,1,2) float32."""
    allowed = f"(n, 1, 2, C) = ({n}, 1, 2, {C})" + (f" or (n, 2) = ({n}, 2)" if C == 1 else "")
    if arr.ndim == 2:
        if arr.shape[1] != 2 or C != 1:
            raise chk.fail(key, f"has shape {shape_text(arr)}", allowed)
        if arr.shape[0] != n:
            raise chk.fail(key, f"has {arr.shape[0]} patterns", f"{n}, as in 'diffraction'")
        arr = chk.real(key, arr)
        return np.ascontiguousarray(arr.reshape(n, 1, 1, 2))
    if arr.ndim != 4:
        raise chk.fail(key, f"has shape {shape_text(arr)} (ndim {arr.ndim})", allowed)
    if arr.shape[0] != n:
        raise chk.fail(key, f"has {arr.shape[0]} patterns", f"{n}, as in 'diffraction'")
    if arr.shape[1:] != (1, 2, C):
        raise chk.fail(key, f"has shape {shape_text(arr)}", allowed)
    arr = chk.real(key, arr)
    return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))


def check_diffraction(raw: dict, chk: Checker, expect_N, expect_gridsize) -> tuple[np.ndarray, int, int, int]:
    """``diffraction`` channel-first (n, C, N, N) float32 >= 0, and its n, N, C."""
    if "diffraction" not in raw:
        raise chk.fail("diffraction", "is missing", "a (n, N, N, C) or (n, N, N) float32 array")
    d = raw["diffraction"]
    if d.ndim == 3:
        d = d[..., None]
    if d.ndim != 4:
        raise chk.fail("diffraction", f"has shape {shape_text(d)} (ndim {d.ndim})",
                       "(n, N, N, C) or (n, N, N)")
    n, N, N2, C = d.shape
    if n == 0:
        raise chk.fail("diffraction", "is empty (0 patterns)", "at least 1 pattern")
    if N != N2 or N == 0:
        raise chk.fail("diffraction", f"has non-square patterns of shape {shape_text(d)}",
                       "(n, N, N, C) with N >= 1")
    if C == 0:
        raise chk.fail("diffraction", f"has 0 channels, shape {shape_text(d)}", "C = gridsize**2 >= 1")
    g = math.isqrt(C)
    if g * g != C:
        raise chk.fail("diffraction", f"has C = {C} channels, not a perfect square",
                       "C = gridsize**2, e.g. 1 or 4")
    if expect_gridsize is not None and g != expect_gridsize:
        raise chk.fail("diffraction", f"has C = {C} channels (gridsize {g})",
                       f"gridsize {expect_gridsize}, C = {expect_gridsize ** 2}")
    if expect_N is not None and N != expect_N:
        raise chk.fail("diffraction", f"has pattern size N = {N}",
                       f"N = {expect_N}, the study's --N; {pattern_size_advice(N)}")
    d = chk.real("diffraction", d)
    n_neg = int((d < 0).sum())
    if n_neg:
        raise chk.fail("diffraction", f"has {n_neg} negative values (min {float(d.min()):.3g})",
                       "amplitudes >= 0")
    return np.ascontiguousarray(np.moveaxis(d, -1, 1)), n, N, C


def check_probe(raw: dict, chk: Checker, N: int) -> np.ndarray:
    """``probeGuess`` (N, N) or (modes, N, N) complex64 (a single mode squeezed)."""
    if "probeGuess" not in raw:
        raise chk.fail("probeGuess", "is missing", f"a ({N}, {N}) complex64 array")
    pr = raw["probeGuess"]
    if pr.ndim not in (2, 3) or pr.shape[-2:] != (N, N) or (pr.ndim == 3 and pr.shape[0] < 1):
        raise chk.fail("probeGuess", f"has shape {shape_text(pr)}",
                       f"({N}, {N}), or (modes, {N}, {N}), to match 'diffraction' N = {N}")
    return chk.complex_("probeGuess", pr[0] if pr.ndim == 3 and pr.shape[0] == 1 else pr)


def check_ground_truth(raw: dict, chk: Checker, require: bool) -> dict[str, np.ndarray]:
    """``YY_ground_truth`` (H, W) and ``YY_ground_truth_all`` (K, H, W) complex64, when present."""
    out: dict[str, np.ndarray] = {}
    if "YY_ground_truth" in raw:
        gt = raw["YY_ground_truth"]
        if gt.ndim == 3 and gt.shape[-1] == 1:
            gt = gt[..., 0]
        if gt.ndim != 2 or min(gt.shape) == 0:
            raise chk.fail("YY_ground_truth", f"has shape {shape_text(raw['YY_ground_truth'])}",
                           "(H, W, 1) or (H, W) with H, W >= 1")
        out["YY_ground_truth"] = chk.complex_("YY_ground_truth", gt)
    elif require:
        raise chk.fail("YY_ground_truth", "is missing",
                       "a (H, W, 1) complex64 ground-truth object (test split)")
    if "YY_ground_truth_all" in raw:
        gta = raw["YY_ground_truth_all"]
        if gta.ndim != 3 or min(gta.shape) == 0:
            raise chk.fail("YY_ground_truth_all", f"has shape {shape_text(gta)}",
                           "(K, H, W) with K, H, W >= 1")
        out["YY_ground_truth_all"] = chk.complex_("YY_ground_truth_all", gta)
    return out


def check_norm_Y_I(raw: dict, chk: Checker) -> float:
    """``norm_Y_I``: a positive scalar (1.0 if absent)."""
    if "norm_Y_I" in raw:
        nv = raw["norm_Y_I"]
        if nv.size != 1:
            raise chk.fail("norm_Y_I", f"has shape {shape_text(nv)}", "a scalar")
        nv = chk.real("norm_Y_I", nv.reshape(()))
        if not float(nv) > 0:
            raise chk.fail("norm_Y_I", f"is {float(nv)!r}", "a positive scalar")
        return float(nv)
    return 1.0
