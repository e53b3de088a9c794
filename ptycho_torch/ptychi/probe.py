"""A better probe than the file's initial guess: Pty-chi LSQML probe refinement.

:func:`refine_probe` runs Pty-chi's LSQML on one object's training scan with the object
**and** the probe optimized (positions fixed), starting from the dataset's probe, and
returns the refined probe in the dataset's own units (``PtychoDataset.probe``: the probe
``P`` of ``A = |fft2(O * P, norm="ortho")|`` with the stored amplitudes ``A = sqrt(counts)
/ s``), ready to replace ``train.probe`` / ``test.probe`` before training.

Units: :func:`ptycho_torch.ptychi.scan_for_ptychi` hands Pty-chi the probe
``P_c = P * s / N`` (its FFT is unnormalized); the refined Pty-chi probe is converted back
exactly inversely, ``P = P_c * N / s`` (:func:`probe_from_ptychi`).

Scale: far-field data fix only the product ``O * P``; ``(O / a, a P)`` fits them equally
well for any ``a``. The refined probe is therefore rescaled so that its total intensity
``sum |P|^2`` (over pixels and modes) equals that of the starting probe, and the object
is divided by the same factor (:func:`match_probe_intensity`); the exit waves, and hence
the data residual, are unchanged by this.

Phase: the data do not fix a probe's constant phase (per mode) nor a linear phase ramp that
the object can take over; LSQML lets both drift. The refined probe's gauges are fixed
against the starting probe as the learned probe's are (:mod:`ptycho.probe_gauge`): the
intensity centroid of its far field back at the starting probe's, the object taking the
opposite ramp, and ``<P_start, P>`` real and positive per mode. Every pattern is unchanged
(exactly for a whole-pixel ramp; a fractional one meets the sub-pixel probe shift's
periodic window, which matters only where the probe reaches the window's edge).

Quality is reported without ground truth, with :func:`ptycho_torch.core.residual.data_residual`
of two LSQML reconstructions of the same scan with the same settings: the object with the
starting probe fixed (``residual_before``) and the object and probe of the refinement
(``residual_after``); the object patches are read at the rounded scan positions
(:func:`ptycho_torch.ptychi.object_patches`), so for sub-pixel scans the residuals are
approximate. ``ProbeRefinement.improved`` says whether the refined probe fits better;
the caller decides whether to use it.

What it can and cannot do (``tests/ptycho_torch/ptychi/test_probe.py``, 200 spiral positions,
N = 32, 30 epochs): from a pupil 20 % too large (correlation 0.33 with the true probe) or
a defocus of 10 instead of 14 rad (0.45) it reaches a correlation of 0.985 to 0.999 (three
noise seeds), and the refinement's object is 0.6 to 5.4 dB (PSNR) below the one
reconstructed with the true probe, against 30 to 40 dB below with the wrong probe fixed. From a
defocus of 6 rad (correlation 0.18) it stays in a local minimum (0.26 after 50 epochs):
the start must be roughly right.

Pty-chi is the optional extra ``iterative``
(:func:`ptycho_torch.ptychi.import_ptychi`); without it :func:`refine_probe` raises
:class:`ptycho_torch.ptychi.IterativeUnavailableError`.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np

from ptycho.dataset import PtychoDataset
from ptycho.probe_gauge import fix_phase_gauge
from ptycho.geometry.grouping import group_centre_and_offsets
from ptycho_torch.core.residual import object_residual
from ptycho_torch.engine.device import resolve_device
from ptycho_torch.ptychi.engine import PtychiOptions, PtychiRun
from ptycho_torch.ptychi.scan import PtychiScan, scan_for_ptychi

__all__ = ["ProbeRefinement", "centres_by_pattern", "dataset_probe", "default_batch_size",
           "default_position_start", "match_probe_intensity", "position_rms", "probe_from_ptychi",
           "probe_correlation", "refine_probe", "with_positions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ProbeRefinement:
    """The result of :func:`refine_probe`.

    ``probe``: (N, N) complex64 (or (modes, N, N), as ``train.probe``), in the units of
    ``train.probe``, with ``sum |probe|^2 == sum |train.probe|^2``.
    ``residual_before`` / ``residual_after``: :func:`~ptycho_torch.core.residual.data_residual`
    dicts of the LSQML reconstruction with the starting probe fixed and of the refinement
    (its object and refined probe), on the same patterns. ``epochs``: LSQML epochs of each
    run. ``time_s``: the refinement run (task build + epochs; the fixed-probe comparison run
    is not counted). ``batch_size``, ``probe_start_epoch``, ``object_index``: the settings
    used. ``scale``: the factor ``a`` applied to the converted Pty-chi probe (the object was
    divided by it). ``object_before`` / ``object_after``: (H, W) complex64 objects of the two
    runs (``object_after`` in the units that go with ``probe``). ``pattern_ids`` (n,) and
    ``positions_before`` / ``positions_after`` (n, 2) (x, y) px: the scan's patterns and
    their positions before and after the refinement (equal unless positions were refined).
    """

    probe: np.ndarray
    residual_before: dict
    residual_after: dict
    epochs: int
    time_s: float
    batch_size: int = 0
    probe_start_epoch: int = 0
    object_index: int = 0
    scale: float = 1.0
    object_before: np.ndarray | None = None
    object_after: np.ndarray | None = None
    pattern_ids: np.ndarray | None = None
    positions_before: np.ndarray | None = None
    positions_after: np.ndarray | None = None

    @property
    def position_shift_rms(self) -> float:
        """RMS distance (px) the positions moved (0 when they were not refined)."""
        if self.positions_before is None or self.positions_after is None:
            return 0.0
        return position_rms(self.positions_after, self.positions_before)

    @property
    def improved(self) -> bool:
        """True when the refined probe re-simulates the patterns better (lower amplitude MAE)."""
        return self.residual_after["amplitude_mae"] < self.residual_before["amplitude_mae"]


def probe_from_ptychi(probe_c: np.ndarray, scan: PtychiScan) -> np.ndarray:
    """Pty-chi probe (..., modes, N, N) -> our units, ``P = P_c * N / s``; complex64.

    The exact inverse of the conversion in :func:`ptycho_torch.ptychi.scan_for_ptychi`.
    A leading OPR axis is dropped (only the first OPR mode is kept); returns (modes, N, N).
    """
    p = np.asarray(probe_c)
    while p.ndim > 3:
        p = p[0]
    return (p.astype(np.complex128) * (scan.N / scan.photon_scale)).astype(np.complex64)


def _intensity(probe: np.ndarray) -> float:
    return float(np.sum(np.abs(np.asarray(probe).astype(np.complex128)) ** 2))


def match_probe_intensity(probe: np.ndarray, obj: np.ndarray | None, reference: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Rescale ``probe`` to the total intensity ``sum |reference|^2``; the object absorbs it.

    Returns ``(a * probe, obj / a, a)`` with ``a = sqrt(sum|reference|^2 / sum|probe|^2)``
    (``obj`` may be None). ``O * P`` is unchanged, so is every simulated pattern.
    """
    target, have = _intensity(reference), _intensity(probe)
    if not (math.isfinite(have) and have > 0):
        raise ValueError(f"refined probe has total intensity {have!r} (expected a finite "
                         "number > 0; the refinement diverged)")
    a = math.sqrt(target / have)
    p = (np.asarray(probe).astype(np.complex128) * a).astype(np.complex64)
    o = None if obj is None else (np.asarray(obj).astype(np.complex128) / a).astype(np.complex64)
    return p, o, a


def dataset_probe(probe_c: np.ndarray, obj: np.ndarray | None, scan: PtychiScan,
                  like: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Pty-chi's refined probe ``probe_c`` back in the dataset's units and shape: converted
    (:func:`probe_from_ptychi`), rescaled to the total intensity of ``like`` (the starting
    dataset probe, (N, N) or (modes, N, N); the object ``obj`` takes the factor,
    :func:`match_probe_intensity`), its phase gauges fixed against ``like`` (the far-field
    centroid by a ramp the object absorbs, each mode's constant phase:
    :func:`ptycho.probe_gauge.fix_phase_gauge`; no pattern changes) and shaped like it.
    Returns ``(probe, obj, factor)``."""
    start = np.asarray(like, dtype=np.complex64)
    modes = start[None] if start.ndim == 2 else start
    probe, obj, a = match_probe_intensity(probe_from_ptychi(probe_c, scan), obj, modes)
    if probe.shape != modes.shape:
        raise ValueError(f"Pty-chi returned a probe of shape {probe.shape} (expected "
                         f"{modes.shape}, the starting probe's modes)")
    probe, obj, gauge = fix_phase_gauge(probe, obj, modes)
    log.info("refined probe's phase gauge fixed against the starting probe: ramp (ky, kx) = "
             "(%.3f, %.3f) frequency px moved to the object, constant phase %.3f rad removed",
             gauge.ramp[0], gauge.ramp[1], gauge.phases[0])
    out = probe[0] if start.ndim == 2 else probe
    return np.ascontiguousarray(out, dtype=np.complex64), obj, a


def probe_correlation(p_true: np.ndarray, p: np.ndarray) -> float:
    """Normalised complex correlation ``|<P_true, P>| / (||P_true|| ||P||)`` in [0, 1].

    Blind to a global complex factor (the phase and scale ambiguities); 1 = same probe.
    """
    a = np.asarray(p_true).astype(np.complex128).ravel()
    b = np.asarray(p).astype(np.complex128).ravel()
    return float(abs(np.vdot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b)))


def default_batch_size(n: int) -> int:
    """LSQML batch size for probe refinement: about 16 updates per epoch, 8..64 patterns.

    The probe is updated once per batch; small batches make it converge in far fewer
    epochs than the object-only baseline's large batches (measured in
    ``tests/ptycho_torch/ptychi/test_probe.py``).
    """
    return int(min(n, max(8, min(64, n // 16))))


def _lsqml(scan: PtychiScan, options: PtychiOptions, *, log_every: int = 0, what: str = ""
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """One LSQML run: ``(object (H, W), Pty-chi probe (opr, modes, N, N), positions (n, 2)
    (x, y), seconds)``; with ``log_every`` a progress line every that many epochs (the run
    is continued in chunks, which gives the same result as one uninterrupted run)."""
    epochs = int(options.epochs)
    step = epochs if not log_every else int(log_every)
    with PtychiRun(scan, options) as run:
        while run.epochs_done < epochs:
            run.run(min(step, epochs - run.epochs_done))
            if log_every:
                loss = run.loss_history()
                log.info("%s: LSQML epoch %d/%d, loss %s, %.0f s", what, run.epochs_done, epochs,
                         f"{loss[-1]:.4g}" if loss else "n/a", run.elapsed_s)
        return run.object(), run.probe(), run.positions_xy(), run.elapsed_s


def position_rms(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square distance (pixels) between two position lists (n, 2)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(np.sqrt(np.mean(np.sum(d * d, axis=1))))


def default_position_start(epochs: int) -> int:
    """The LSQML epoch the positions start to move at: a tenth of the epochs, at least 1 (the
    first epoch forms the object the positions are registered against). With Pty-chi
    position step 16 (:class:`~ptycho_torch.ptychi.engine.PtychiOptions`), from epoch 5 of 50,
    the 1087 nominal run-1084 positions at N = 64 (1.203 px RMS off) came to 0.252 px
    (docs/guide/own-scan.md, 'Probe and positions')."""
    return max(1, int(epochs) // 10)


def _check_refinement(n: int, epochs, batch_size) -> int:
    bs = default_batch_size(n) if batch_size is None else int(batch_size)
    if not 1 <= bs <= n:
        raise ValueError(f"probe refinement batch_size={batch_size!r} is out of range "
                         f"(allowed: 1..{n}, the number of scan positions)")
    if not (isinstance(epochs, (int, np.integer)) and not isinstance(epochs, bool) and epochs >= 1):
        raise ValueError(f"probe refinement epochs={epochs!r} is out of range (allowed: an "
                         "integer >= 1)")
    return bs


def refine_probe(train: PtychoDataset, *, epochs: int = 50, device: str = "auto", seed: int = 0,
                 object_index: int | None = None, batch_size: int | None = None,
                 probe_start_epoch: int = 0, refine_positions: bool = False,
                 position_start_epoch: int | None = None, log_every: int = 0
                 ) -> ProbeRefinement:
    """Refine ``train.probe`` with Pty-chi LSQML (object + probe; positions too with
    ``refine_positions``).

    Uses the patterns of object ``object_index`` (default 0; each scan position once at
    gridsize > 1) and starts from ``train.probe`` and a flat object. ``epochs`` LSQML
    epochs with batches of ``batch_size`` patterns (default :func:`default_batch_size`);
    the probe is updated from epoch ``probe_start_epoch`` on, the positions (Pty-chi's
    gradient position correction) from ``position_start_epoch`` on (default
    :func:`default_position_start`, once the object has formed). The refined probe is
    converted back to the units of ``train.probe`` and **rescaled so that its total
    intensity sum |P|^2 equals the starting probe's** (the object absorbs the factor;
    module docstring). A second LSQML run with the same settings and the starting probe
    fixed gives ``residual_before``. Bad detector pixels are given to Pty-chi as measured
    zeros (as in the iterative baseline), and excluded from the residuals. ``log_every``:
    a progress line every that many epochs of the refinement run (0: none).
    """
    index = 0 if object_index is None else int(object_index)
    dev = resolve_device(device)
    scan = scan_for_ptychi(train, index)
    bs = _check_refinement(int(scan.patterns.shape[0]), epochs, batch_size)
    fixed = PtychiOptions("lsqml", epochs=int(epochs), batch_size=bs, device=dev, seed=int(seed))
    joint = replace(fixed, optimize_probe=True, probe_start_epoch=probe_start_epoch)
    if refine_positions:
        first = (default_position_start(int(epochs)) if position_start_epoch is None
                 else position_start_epoch)
        joint = replace(joint, optimize_positions=True, position_start_epoch=first)
    sub = train.select(train.object_selection(index))

    def residual(obj, probe, centres):
        return object_residual(obj, centres, sub.diffraction, probe,
                               photon_scale=train.photon_scale, bad_pixels=train.bad_pixels)

    obj_before, _, _, _ = _lsqml(scan, fixed)
    obj_ref, probe_c, positions, elapsed = _lsqml(scan, joint, log_every=log_every,
                                                  what="probe refinement")
    out, obj_after, a = dataset_probe(probe_c, obj_ref, scan, train.probe)
    centres_after = centres_by_pattern(sub, scan.pattern_ids, positions)
    return ProbeRefinement(
        probe=out,
        residual_before=residual(obj_before, train.probe, sub.centres),
        residual_after=residual(obj_after, out, centres_after),
        epochs=int(epochs), time_s=float(elapsed), batch_size=bs,
        probe_start_epoch=int(probe_start_epoch), object_index=index, scale=float(a),
        object_before=obj_before, object_after=obj_after,
        pattern_ids=scan.pattern_ids.copy(),
        positions_before=scan.positions_xy.astype(np.float64),
        positions_after=positions if refine_positions else scan.positions_xy.astype(np.float64))


def centres_by_pattern(data: PtychoDataset, pattern_ids: np.ndarray, positions_xy: np.ndarray
                       ) -> np.ndarray:
    """``data.centres`` (n, C, 2) with each patch whose pattern id is in ``pattern_ids`` moved
    to that pattern's entry of ``positions_xy`` (n_ids, 2); the others are kept."""
    centres = np.array(data.centres, dtype=np.float64)
    ids = data.pattern_ids()
    lookup = {int(k): i for i, k in enumerate(np.asarray(pattern_ids).tolist())}
    for g, c in np.ndindex(ids.shape):
        i = lookup.get(int(ids[g, c]))
        if i is not None:
            centres[g, c] = positions_xy[i]
    return centres


def with_positions(data: PtychoDataset, pattern_ids: np.ndarray, positions_xy: np.ndarray
                   ) -> PtychoDataset:
    """``data`` with the patches of ``pattern_ids`` at ``positions_xy`` (n_ids, 2) (x, y)
    (the others kept), both position fields rebuilt from the moved patches by the dataset's
    convention (:func:`ptycho.geometry.grouping.group_centre_and_offsets`): ``coords_offsets`` each
    group's centre, the mean of its patches' positions, and ``coords_nominal`` each patch's
    offset from it, the offsets the overlap constraint trains with. Every patch of one
    measured pattern (``pattern_ids()``) moves alike, so ``centres`` is the new position."""
    centres = centres_by_pattern(data, pattern_ids, positions_xy)          # (g, C, 2)
    ids = data.pattern_ids()
    _, first, groups = np.unique(ids.ravel(), return_index=True, return_inverse=True)
    offsets, nominal = group_centre_and_offsets(centres.reshape(-1, 2)[first],
                                                groups.reshape(ids.shape))
    return replace(data, coords_offsets=offsets, coords_nominal=nominal)
