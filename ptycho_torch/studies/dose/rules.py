"""The dose study's rules: the loss per dose (torch-free, with the options:
:mod:`ptycho_torch.studies.options.dose`), the held-out epoch choice, the crossover."""
from __future__ import annotations

import logging
import math

import numpy as np

from ptycho.metric_catalogue import metrics
from ptycho_torch.core.residual import object_residual
from ptycho_torch.ptychi.engine import PtychiOptions, reconstruct
from ptycho_torch.ptychi.scan import subset_scan
from ptycho_torch.studies.options.dose import (  # noqa: F401  (re-exported: imported from here)
    DEFAULT_DOSES,
    POISSON_BELOW,
    TRANSFER_MAX,
    format_dose,
    loss_for_dose,
)


log = logging.getLogger(__name__)

SELECTION_METRIC = "poisson_nll"   # held-out residual that picks the iterative epoch
# (label, StudyMetrics key, channel, JSON name) of the crossover and the dose figure
DOSE_METRICS = tuple((m.title, m.record, m.channel, m.long_key)
                     for m in metrics("amp_psnr", "phase_psnr", "amp_frc50", "phase_frc50"))


RULES = {
    "loss": f"networks train with the Poisson NLL below {format_dose(POISSON_BELOW)} photons per "
            "pattern "
            "and with the amplitude MAE at and above, unless --loss is given on the command line",
    "network_checkpoint": "pinn_<arch> rows use the final weights; pinn_<arch>@bestval rows the "
                          "checkpoint with the lowest validation loss (validation patterns are "
                          "held out of the training scan)",
    "iterative_epoch": "ptychi_<engine>@heldout: a seeded heldout_fraction of the scan positions "
                       "is held out, the rest reconstructed; every heldout_every epochs the "
                       f"held-out patterns' {SELECTION_METRIC} (data_residual of the object's "
                       "patches there) is evaluated; the full-scan reconstruction at the epoch "
                       "with the lowest value (earliest on ties) is reported",
    "oracle": "ptychi_<engine>@oracle: the full-scan checkpoint with the best ground-truth phase "
              "PSNR (uses the ground truth: an upper bound, not a baseline)",
    "transfer": "pinn_<arch>@<dose>: the network trained at that dose applied to every dose's "
                "test scan with its own input scale (amplitudes sqrt(counts)/s are in the same "
                "units at every dose)",
    "refined": "<network>+<engine>: Pty-chi <engine> started at that network row's object "
               "(pinn_<arch> and the transfer row) for refine_epochs; "
               "<network>+<engine>@heldout: the epoch (0 = the network's object, then every "
               "min(heldout_every, refine_epochs)) chosen by the same held-out rule, its "
               "selection run started from the network's object stitched from the kept "
               "positions' patterns only",
    "frc": "an FRC50 the curve never fell below (censored, '>= 0.5' in the tables) enters "
           "the figures, best rows and crossovers at its bound, 0.5 cycles/pixel",
    "crossover": "per metric, the best network row (every pinn_* row without '+') minus the best "
                 "ground-truth-free iterative row (ptychi_<engine> and @heldout) at each dose, "
                 "interpolated linearly in log10(dose) to its first sign change",
}


def select_epoch(epochs, residuals) -> int:
    """The epoch with the lowest finite residual (the earliest on ties)."""
    r = np.asarray(residuals, dtype=float)
    ok = np.flatnonzero(np.isfinite(r))
    if len(epochs) != len(r) or ok.size == 0:
        raise ValueError(f"no finite held-out residual among {len(r)} evaluations")
    return int(np.asarray(epochs)[ok[np.argmin(r[ok])]])


def heldout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(kept, held_out)`` indices of ``n`` positions (at least one in each)."""
    if n < 2:
        raise ValueError(f"the scan has {n} position(s); at least 2 are needed to hold one out")
    n_h = min(max(1, round(n * fraction)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_h:]), np.sort(perm[:n_h])


def heldout_residuals(scan, held: np.ndarray, objects, probe, bad_pixels=None) -> dict:
    """Residuals of each object (H, W) on the held-out patterns of a PtychiScan:
    ``{"amplitude_mae": [...], "poisson_nll": [...]}`` (``ptycho_torch.core.residual``)."""
    s = scan.photon_scale
    amps = (np.sqrt(scan.patterns[held].astype(np.float64)) / s).astype(np.float32)[:, None]
    centres = scan.positions_xy[held][:, None, :]
    out = {"amplitude_mae": [], "poisson_nll": []}
    for obj in objects:
        r = object_residual(obj, centres, amps, probe, photon_scale=s, bad_pixels=bad_pixels)
        out["amplitude_mae"].append(r["amplitude_mae"])
        out["poisson_nll"].append(r["poisson_nll"])
    return out


def heldout_curve(engine: str, scan, probe, *, epochs: int, every: int, fraction: float,
                  batch_size: int | None, device: str, seed: int, bad_pixels=None,
                  start=None) -> dict:
    """Reconstruct the scan without a held-out subset of positions and evaluate the held-out
    residual every ``every`` epochs; ``selected_epoch`` is :func:`select_epoch` of
    :data:`SELECTION_METRIC`. ``start``: a function of the kept positions' scan that
    returns the starting object (a refined row: the network's object built from the kept
    patterns only); epoch 0, the start itself, is then evaluated too."""
    kept, held = heldout_split(scan.patterns.shape[0], fraction, seed)
    kept_scan = subset_scan(scan, kept)
    init = None if start is None else start(kept_scan)
    options = PtychiOptions(engine, epochs=epochs, batch_size=batch_size, device=device,
                            seed=seed)
    res, states = reconstruct(kept_scan, options, every=every, initial_object=init)
    if init is not None:
        states = [(0, init, 0.0)] + states
    curve = heldout_residuals(scan, held, [obj for _, obj, _ in states], probe, bad_pixels)
    ep = [e for e, _, _ in states]
    return {"criterion": SELECTION_METRIC, "epochs": ep, **curve,
            "selected_epoch": select_epoch(ep, curve[SELECTION_METRIC]),
            "n_heldout": int(held.size), "n_kept": int(kept.size), "time_s": res.time_s}


def crossover(doses, network, iterative) -> dict:
    """Where ``network - iterative`` changes sign, by linear interpolation in log10(dose).

    ``dose``: the first crossing (lowest dose), or None with ``reason`` ("network below at
    every dose", "network above at every dose", or too few finite values); ``crossings``
    lists every crossing.
    """
    x = np.log10(np.asarray(doses, dtype=float))
    d = np.asarray(network, dtype=float) - np.asarray(iterative, dtype=float)
    ok = np.isfinite(d) & np.isfinite(x)
    xs, ds = x[ok], d[ok]
    out = {"dose": None, "reason": None, "crossings": [],
           "network_minus_iterative": [None if not math.isfinite(v) else float(v) for v in d]}
    if xs.size == 0:
        out["reason"] = "no dose with finite values for both"
        return out
    crossings = []
    for i in range(xs.size):
        if ds[i] == 0:
            crossings.append(float(10 ** xs[i]))
        elif i + 1 < xs.size and ds[i] * ds[i + 1] < 0:
            t = ds[i] / (ds[i] - ds[i + 1])
            crossings.append(float(10 ** (xs[i] + t * (xs[i + 1] - xs[i]))))
    out["crossings"] = crossings
    if crossings:
        out["dose"] = crossings[0]
    elif (ds > 0).all():
        out["reason"] = "network above at every dose"
    else:
        out["reason"] = "network below at every dose"
    return out
