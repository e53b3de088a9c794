"""The field's ground-truth-free resolution estimate for a network row: the two-half FRC.

The scan's patterns are split into two interleaved halves (even and odd places in scan
order: neighbours on a raster or a spiral land in different halves), each half's predicted
patches are stitched alone (position stitching, the study's crop, sub-pixel and phase
options) on one canvas, and the Fourier ring correlation of the two half-objects is taken
on the box both cover (amplitude; phase after the constant phase between the halves is
removed: the odd half is turned by the angle of ``sum(even * conj(odd))``, the phase of the
even half relative to the odd one, amplitude-weighted). FRC50 is where it first falls below
0.5 and ``frc_halfbit`` where it falls below the half-bit curve of the rings' pixel counts
(``ptycho.frc``), in cycles per pixel (0.5 = Nyquist); a curve that never falls below is
censored: ``None``, with ``">= 0.5"`` in ``frc50_censored`` / ``frc_halfbit_censored``.

The halves are not independent measurements' reconstructions: they share the network's
weights, trained on every pattern of the scan (both halves), so its learned prior, and the
stitching canvas and the normalisation of the scan (the input scale, the probe). The
estimate says how consistently the same network recovers the object from disjoint halves
of the patterns, not what two independent reconstructions would give: it is optimistic.
Iterative rows would need two reconstructions and are not given one.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ptycho.config.config import InferenceConfig
from ptycho.frc import frc_crossings, frc_curve
from ptycho.stitching import canvas_for_positions, covered_box, stitch
from ptycho.reconstruction import stitch_options

MIN_SIDE = 16


def two_half_frc(patches: np.ndarray, centres: np.ndarray, inference: InferenceConfig,
                 weights=None) -> dict | None:
    """``{"frc50", "frc_halfbit", "frc50_censored", "frc_halfbit_censored": [amplitude,
    phase], "region": [h, w], "n_patterns": [n_a, n_b], "note"}`` for the predicted
    ``patches`` (n, C, N, N) at ``centres`` (n, C, 2) (x, y), or None when the halves share
    no ``MIN_SIDE`` x ``MIN_SIDE`` box (too few patterns). ``weights``: the (N, N) stitching
    weights of the full reconstruction (``Reconstruction.stitch_weights``), or None."""
    N = patches.shape[-1]
    p = np.asarray(patches).reshape(-1, 1, N, N)
    c = np.asarray(centres, dtype=np.float64).reshape(-1, 1, 2)
    if p.shape[0] < 4:
        return None
    options = stitch_options(replace(inference, stitch="positions"), N)
    shape, origin = canvas_for_positions(c.reshape(-1, 2), N, crop=options.crop)
    c = c + np.asarray(origin, dtype=np.float64)
    halves = [stitch(p[k::2], c[k::2], options, canvas_shape=shape, weights=weights)
              for k in (0, 1)]
    both = (halves[0][1] > 0) & (halves[1][1] > 0)
    if not both.any():
        return None
    r0, c0, h, w = covered_box(both)
    if min(h, w) < MIN_SIDE:
        return None
    a, b = (np.asarray(obj)[r0:r0 + h, c0:c0 + w].astype(np.complex128) for obj, _ in halves)
    b = b * np.exp(1j * np.angle(np.vdot(b, a)))   # vdot(b, a) = sum(conj(b) a): a's phase on b
    out: dict[str, list] = {k: [] for k in ("frc50", "frc_halfbit", "frc50_censored", "frc_halfbit_censored")}
    for fa, fb in ((np.abs(a), np.abs(b)), (np.angle(a), np.angle(b))):
        freqs, frc = frc_curve(fa, fb)
        cross = frc_crossings(freqs, frc, min(h, w))
        for key in ("frc50", "frc_halfbit"):
            out[key].append(cross[key][0])
            out[f"{key}_censored"].append(cross[key][1])
    return {**out, "region": [int(h), int(w)],
            "n_patterns": [int(p[0::2].shape[0]), int(p[1::2].shape[0])],
            "note": "FRC of the objects stitched from the even and the odd patterns (cycles "
                    "per pixel); not independent: both share the network's weights, trained "
                    "on both halves, and the stitching canvas and normalisation"}

