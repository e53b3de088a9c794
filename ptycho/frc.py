"""Fourier ring correlation of two real images, and where it crosses a threshold.

Rings are integer radii of the centred spectrum, in cycles per pixel of the image (``n``
rings from 0 to 0.5); each image's mean is removed and, by default, a Hann window applied
before the FFT (without it a stitched image's edges keep the FRC near 1).

Three thresholds are reported (:func:`frc_crossings`): the fixed 0.5 and 1/7 and the
half-bit curve of van Heel & Schatz (2005, J. Struct. Biol. 151, 250),
``T(r) = (0.2071 + 1.9102 / sqrt(n_r)) / (1.2071 + 0.9102 / sqrt(n_r))`` with ``n_r`` the
pixels in ring ``r`` (:func:`ring_pixel_counts`; the Hann window lowers the effective count,
which the formula does not model). A curve that never falls below a threshold up to the
last ring is **censored**: the crossing is ``None`` and its label ``">= 0.5"`` (the last
ring's frequency, Nyquist for an even side), never a number.
"""
from __future__ import annotations

import numpy as np

__all__ = ["CENSORED_PREFIX", "THRESHOLD_KEYS", "censored_bound", "check_real_2d", "frc_crossings",
           "frc_curve", "frc_threshold_crossing", "halfbit_threshold", "ring_pixel_counts"]

#: the keys of :func:`frc_crossings`: FRC = 0.5, FRC = 1/7, the half-bit curve
THRESHOLD_KEYS = ("frc50", "frc_1_7", "frc_halfbit")
#: a censored crossing's label starts with this, followed by the last ring's frequency
CENSORED_PREFIX = ">= "

# A Fourier ring whose power is below this fraction of the image's total spectral power
# is treated as empty (numerically zero in float64), e.g. every ring of a constant image
# after mean subtraction. Rounding noise of float32 data is ~1e-14 of the power, far above.
_EMPTY_RING_REL = 1e-24


def check_real_2d(img, name: str) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D real image (H, W), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name}: expected a real image, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or inf; allowed finite values only")
    return arr


def _rings(n: int) -> np.ndarray:
    """(n, n) ring index of every FFT pixel: ``round(sqrt(kx**2 + ky**2))``."""
    k = np.rint(np.fft.fftfreq(n) * n)
    return np.rint(np.hypot(k[:, None], k[None, :])).astype(np.int64)


def ring_pixel_counts(n: int) -> np.ndarray:
    """(n//2 + 1,) int64: the pixels of each ring of :func:`frc_curve` for side ``n``."""
    n = int(n)
    if n < 2:
        raise ValueError(f"n: got {n}, allowed an image side >= 2")
    ring = _rings(n)
    return np.bincount(ring[ring < n // 2 + 1], minlength=n // 2 + 1).astype(np.int64)


def halfbit_threshold(n_pixels) -> np.ndarray:
    """The half-bit threshold curve (van Heel & Schatz 2005) for rings of ``n_pixels``
    pixels: ``(0.2071 + 1.9102 / sqrt(n)) / (1.2071 + 0.9102 / sqrt(n))`` (1 at n = 1,
    tending to 0.1716 for large rings)."""
    n = np.asarray(n_pixels, dtype=np.float64)
    if np.any(~(n >= 1)):
        raise ValueError("n_pixels: every ring needs at least 1 pixel")
    s = 1.0 / np.sqrt(n)
    return (0.2071 + 1.9102 * s) / (1.2071 + 0.9102 * s)


def frc_curve(img1, img2, *, window: str | None = "hann"):
    """Fourier ring correlation of two real 2-D images.

    Non-square images are cropped to their central square (side = min(H, W)).

    ``window="hann"`` (default): each image has its mean subtracted and is multiplied
    by a separable 2-D Hann window before the FFT. Without apodization the jump at the
    borders of a non-periodic image (a stitched reconstruction and its ground truth
    share the same borders) puts strongly correlated power on the kx = 0 and ky = 0
    axes at every frequency, so the FRC stays near 1 up to Nyquist even for a blurred
    prediction. ``window=None`` uses the raw images (the reference's un-apodized FRC).

    With
    ``n`` the side, rings are one frequency bin wide: pixel ``(ky, kx)`` (integer FFT
    indices in ``[-n/2, n/2)``) belongs to ring ``round(sqrt(kx**2 + ky**2))``; rings
    ``0 .. n//2`` are kept (corners beyond the Nyquist circle are dropped).

    ``FRC(r) = Re(sum F1 conj(F2)) / sqrt(sum |F1|^2 * sum |F2|^2)`` over ring ``r``.
    A ring that is numerically empty (power < 1e-24 of the image's total spectral
    power, e.g. the DC ring of an exactly mean-free image) gets FRC 1.0 if it is empty
    in both images and 0.0 if only in one.

    Returns:
        ``(freqs, frc)``:

        * ``freqs``: (n//2 + 1,) float64, ``r / n`` in cycles/pixel (0 .. 0.5 for even n).
        * ``frc``: (n//2 + 1,) float64.
    """
    a = check_real_2d(img1, "img1")
    b = check_real_2d(img2, "img2")
    if a.shape != b.shape:
        raise ValueError(f"img2: shape {b.shape} does not match img1 shape {a.shape}")
    n = min(a.shape)
    if n < 2:
        raise ValueError(f"img1: shape {a.shape} too small for FRC; need at least 2 x 2")
    r0 = (a.shape[0] - n) // 2
    c0 = (a.shape[1] - n) // 2
    a = a[r0 : r0 + n, c0 : c0 + n].astype(np.float64)
    b = b[r0 : r0 + n, c0 : c0 + n].astype(np.float64)
    if window == "hann":
        w1 = np.hanning(n)
        w2 = np.outer(w1, w1)
        a = (a - a.mean()) * w2
        b = (b - b.mean()) * w2
    elif window is not None:
        raise ValueError(f"window: got {window!r}, allowed 'hann' or None")
    f1 = np.fft.fft2(a)
    f2 = np.fft.fft2(b)
    ring = _rings(n)
    n_rings = n // 2 + 1
    keep = ring < n_rings
    idx = ring[keep]
    p1_all = np.abs(f1) ** 2
    p2_all = np.abs(f2) ** 2
    cross = np.bincount(idx, weights=(f1 * np.conj(f2)).real[keep], minlength=n_rings)
    p1 = np.bincount(idx, weights=p1_all[keep], minlength=n_rings)
    p2 = np.bincount(idx, weights=p2_all[keep], minlength=n_rings)
    empty1 = p1 <= _EMPTY_RING_REL * p1_all.sum()
    empty2 = p2 <= _EMPTY_RING_REL * p2_all.sum()
    frc = np.zeros(n_rings, dtype=np.float64)
    ok = ~(empty1 | empty2)
    frc[ok] = cross[ok] / np.sqrt(p1[ok] * p2[ok])
    frc[empty1 & empty2] = 1.0
    freqs = np.arange(n_rings, dtype=np.float64) / n
    return freqs, frc


def frc_threshold_crossing(freqs, frc, threshold=0.5) -> float | None:
    """First frequency where ``frc`` drops below ``threshold`` (cycles/pixel), or ``None``
    when it never does (a censored crossing: at or beyond the last ring).

    ``threshold``: a number, or a curve of the same length as ``frc`` (e.g.
    :func:`halfbit_threshold` of the rings' pixel counts).
    The DC ring (``freqs == 0``, when it comes first) is not searched: once each image's
    mean is removed and the window applied, it holds little more than the sign of the two
    windowed means' product, so a reconstruction offset by a constant read -1 there and
    scored an FRC50 of 0. The search starts at the next ring.
    Linear interpolation of ``frc - threshold`` between the last ring at or above the
    threshold and the first ring below it; the first searched ring's frequency if it is
    already below. NaN entries never count as below.
    """
    f = np.asarray(freqs, dtype=np.float64).ravel()
    c = np.asarray(frc, dtype=np.float64).ravel()
    if f.shape != c.shape or f.size == 0:
        raise ValueError(
            f"frc: expected the same non-zero length as freqs, got {c.size} and {f.size}"
        )
    t = np.broadcast_to(np.asarray(threshold, dtype=np.float64), c.shape) if np.ndim(
        threshold) == 0 else np.asarray(threshold, dtype=np.float64).ravel()
    if t.shape != c.shape:
        raise ValueError(f"threshold: expected a number or {c.size} values (one per ring), "
                         f"got {t.size}")
    d = c - t
    start = 1 if f.size > 1 and f[0] == 0.0 else 0
    below = np.flatnonzero(d[start:] < 0)
    if below.size == 0:
        return None
    i = int(below[0]) + start
    if i == start:
        return float(f[i])
    f0, f1, d0, d1 = f[i - 1], f[i], d[i - 1], d[i]
    if not np.isfinite(d0):  # previous ring NaN: no interpolation possible
        return float(f[i])
    return float(f0 + d0 * (f1 - f0) / (d0 - d1))


def frc_crossings(freqs, frc, side: int) -> dict[str, tuple[float | None, str | None]]:
    """``{key: (crossing, censored)}`` for the keys of :data:`THRESHOLD_KEYS` (0.5, 1/7,
    the half-bit curve of rings of an image of side ``side``): ``(frequency, None)`` when
    the curve crosses, ``(None, ">= 0.5")`` (the last ring's frequency) when it does not."""
    f = np.asarray(freqs, dtype=np.float64)
    counts = ring_pixel_counts(side)
    if counts.shape != f.shape:
        raise ValueError(f"side: {side} gives {counts.size} rings, the curve has {f.size}")
    label = f"{CENSORED_PREFIX}{float(f[-1]):.4g}"
    out: dict[str, tuple[float | None, str | None]] = {}
    for key, t in zip(THRESHOLD_KEYS, (0.5, 1.0 / 7.0, halfbit_threshold(counts))):
        x = frc_threshold_crossing(f, frc, t)
        out[key] = (x, None) if x is not None else (None, label)
    return out


def censored_bound(label) -> float | None:
    """The frequency of a censored label (``">= 0.5"`` -> 0.5); None for anything else."""
    if isinstance(label, str) and label.startswith(CENSORED_PREFIX):
        try:
            return float(label[len(CENSORED_PREFIX):])
        except ValueError:
            return None
    return None
