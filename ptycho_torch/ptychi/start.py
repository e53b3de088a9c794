"""Network-initialized iteration: a trained network's object as Pty-chi's starting guess.

A network reconstructs a scan in one pass; an iterative engine starting from a flat object
needs tens of epochs and, at low dose, fits the noise. Starting the engine at the network's
stitched object combines both: the learned prior gives the start, the physics (the measured
patterns of *this* scan, the known probe and positions) corrects it. Rows made this way are
named ``<network row>+<engine>`` in the comparison and the dose study and are scored like
every other row (``kind: refined``).

The starting object (:func:`initial_object`), in the object frame of test object 0:

* where the network's patches reach (stitched by positions with the study's crop, sub-pixel
  and phase options, whatever the scored stitch mode): the network's complex object, with
  its amplitude-weighted mean phase removed (a constant phase is not determined by
  far-field data, and the fill below has phase 0, so the two meet without a step on
  average);
* elsewhere (the object's rim that only the probes' tails reach): a flat object of the
  Parseval amplitude estimate (Pty-chi's usual flat start);
* the whole frame scaled by one real factor so that the total intensity the known probe
  predicts at the scan positions equals the measured total (Parseval): the network's
  absolute amplitude scale is not determined by the data either, and the engine's step
  sizes assume a start of the right brightness.

:func:`start_from_patches` builds it from the predicted patches at the positions of the
given scan only: the held-out epoch rule of the dose study reconstructs a scan without its
held-out positions, and its start must not have seen the held-out patterns either.
"""
from __future__ import annotations

import numpy as np

from ptycho.stitching import StitchOptions, stitch
from ptycho.geometry.patches import object_patches
from ptycho_torch.ptychi.scan import PtychiScan


def predicted_total_counts(obj: np.ndarray, scan: PtychiScan) -> float:
    """Total counts the scan's probe predicts for ``obj`` (H, W) at the scan positions
    (Parseval: the unnormalized FFT's energy is N^2 times the exit waves' energy)."""
    N = scan.N
    patches = object_patches(obj, scan.positions_xy[:, None, :], N)[:, 0]   # (n, N, N)
    modes = np.asarray(scan.probe).reshape(-1, N, N)
    energy = sum(float(np.sum(np.abs(patches * m) ** 2)) for m in modes)
    return float(N * N * energy)


def initial_object(canvas: np.ndarray, covered: np.ndarray, scan: PtychiScan) -> np.ndarray:
    """The Pty-chi start (H, W) complex64 from a network's stitched ``canvas`` (the object
    frame, ``scan.object_shape``) where ``covered``; see the module docstring."""
    canvas = np.asarray(canvas, dtype=np.complex128)
    covered = np.asarray(covered, dtype=bool)
    if canvas.shape != tuple(scan.object_shape) or covered.shape != canvas.shape:
        raise ValueError(f"network canvas {canvas.shape} / coverage {covered.shape} do not "
                         f"match the object frame {tuple(scan.object_shape)}")
    inside = canvas[covered]
    if inside.size == 0 or not np.all(np.isfinite(inside)):
        raise ValueError("the network reconstruction is empty or not finite: it cannot start "
                         "an iterative engine")
    mean_phase = np.angle(np.sum(inside))          # amplitude-weighted circular mean
    obj = np.full(canvas.shape, scan.amplitude_guess, dtype=np.complex128)
    obj[covered] = inside * np.exp(-1j * mean_phase)
    predicted = predicted_total_counts(obj, scan)
    if not predicted > 0:
        raise ValueError("the network reconstruction is zero under the probe: it cannot "
                         "start an iterative engine")
    measured = float(np.sum(scan.patterns, dtype=np.float64))
    return (obj * np.sqrt(measured / predicted)).astype(np.complex64)


def start_options(options: StitchOptions) -> StitchOptions:
    """Positions stitching with ``options``' crop, sub-pixel and phase settings (tiles
    cover only the grid region; the start needs every illuminated pixel)."""
    if options.mode == "positions":
        return options
    return StitchOptions(mode="positions", crop=options.crop)


def start_from_patches(patches: np.ndarray, centres: np.ndarray, scan: PtychiScan,
                       options: StitchOptions, *, pattern_ids: np.ndarray) -> np.ndarray:
    """:func:`initial_object` from the predicted ``patches`` (n, C, N, N) at ``centres``
    (n, C, 2) (x, y) whose ``pattern_ids`` (n, C) are patterns of ``scan``
    (``scan.pattern_ids``); the others are not used."""
    N = scan.N
    p = np.asarray(patches).reshape(-1, 1, N, N)
    c = np.asarray(centres, dtype=np.float64).reshape(-1, 1, 2)
    ids = np.asarray(pattern_ids, dtype=np.int64).reshape(-1)
    if ids.shape[0] != p.shape[0]:
        raise ValueError(f"pattern_ids hold {ids.shape[0]} ids for {p.shape[0]} patches "
                         "(expected one per patch)")
    mask = np.isin(ids, scan.pattern_ids)
    if not mask.any():
        raise ValueError("no predicted patch is one of the scan's patterns")
    p, c = p[mask], c[mask]
    canvas, coverage = stitch(p, c, start_options(options), canvas_shape=scan.object_shape)
    return initial_object(canvas, coverage > 0, scan)
