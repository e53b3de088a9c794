"""The study's probe and positions as estimates: which route runs, what it did, and how well
the result fits the data (``ptycho.config.probe_config`` states the routes).

* :func:`resolve_route` turns ``--probe-update`` (and the older ``--refine-probe-epochs``)
  into the route that runs, with the reason, before anything is written;
* :func:`corrects_positions` says whether that route corrects the positions too;
* :func:`refine_study_probe` runs the lsqml route (probe, and positions when
  :func:`corrects_positions`) on the training scan, with progress lines;
* :func:`scored_at_corrected_positions` says whether the test scan's positions were
  corrected, so that its rows are scored with the translation registered
  (``ptycho.evaluation``: the frame of corrected positions is not the ground truth's);
* :func:`report` logs the data residual before and after, against the Poisson noise floor
  of the scan (:func:`poisson_floor_mae`), and warns, naming the flags, when the fit stays
  far above it.
"""
from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np
from scipy import stats

from ptycho.config.probe_config import DEFAULT_LSQML_EPOCHS, ProbeConfig
from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import StudyError
from ptycho.dataset import PtychoDataset
from ptycho_torch.ptychi import import_ptychi, ptychi_available
from ptycho_torch.ptychi.probe import default_position_start, refine_probe, with_positions

log = logging.getLogger(__name__)

#: a fit this many times the Poisson noise floor (amplitude MAE) is reported as poor
POOR_FIT_RATIO = 3.0
_TABLE_MAX = 400


def _mean_abs_sqrt_deviation() -> np.ndarray:
    """``E|sqrt(K) - sqrt(k)|`` for ``K ~ Poisson(k)``, k = 0 .. _TABLE_MAX (exact sums)."""
    out = np.zeros(_TABLE_MAX + 1)
    for k in range(1, _TABLE_MAX + 1):
        K = np.arange(0, int(k + 12 * math.sqrt(k) + 30))
        out[k] = float(np.sum(stats.poisson.pmf(K, k) * np.abs(np.sqrt(K) - math.sqrt(k))))
    return out


def poisson_floor_mae(diffraction: np.ndarray, photon_scale: float,
                      bad_pixels: np.ndarray | None = None) -> float:
    """The amplitude MAE (``data_residual``'s ``amplitude_mae``) that a perfect model would
    still have on these patterns because of Poisson noise: per measured pixel with ``k``
    counts, ``E|sqrt(K) - sqrt(k)|`` for ``K ~ Poisson(k)`` (``k`` standing in for the
    unknown expectation; 0.399 for large ``k``), over the sum of the measured amplitudes."""
    s = float(photon_scale)
    amp = np.asarray(diffraction, dtype=np.float64)
    if bad_pixels is not None:
        amp = amp[..., ~np.asarray(bad_pixels, dtype=bool)]
    k = np.rint(np.square(s * amp)).astype(np.int64).ravel()
    table = _mean_abs_sqrt_deviation()
    dev = np.where(k <= _TABLE_MAX, table[np.minimum(k, _TABLE_MAX)], 0.5 * math.sqrt(2 / math.pi))
    return float(dev.sum() / s / max(float(amp.sum()), 1e-300))


def resolve_route(cfg: StudyConfig) -> tuple[str, str]:
    """``(route, reason)``: ``none``, ``lsqml`` or ``learn`` for this study."""
    p, epochs = cfg.probe, cfg.training.refine_probe_epochs
    if p.probe_update == "none":
        return ("lsqml", "--refine-probe-epochs was given") if epochs else ("none", "as given")
    if p.probe_update != "auto":
        return p.probe_update, f"--probe-update {p.probe_update}"
    if cfg.simulated and not p.refine_positions:
        return "none", "--probe-update auto on simulated data (its probe is the true one)"
    if ptychi_available():
        return "lsqml", "--probe-update auto: a file's probe, Pty-chi installed"
    if p.refine_positions:
        raise StudyError("--refine-positions needs Pty-chi (the optional extra 'iterative'), "
                         "which is not installed [flag --refine-positions]")
    return "learn", "--probe-update auto: a file's probe, Pty-chi not installed"


def corrects_positions(cfg: StudyConfig, route: str) -> bool:
    """Whether ``route`` corrects the scan positions: only the lsqml route does; there
    ``--refine-positions`` / ``--no-refine-positions`` decide, and unset (auto) means yes when
    ``--probe-update auto`` runs on a file (``ptycho.config.probe_config``)."""
    if route != "lsqml":
        return False
    if cfg.probe.refine_positions is not None:
        return cfg.probe.refine_positions
    return cfg.probe.probe_update == "auto" and not cfg.simulated


def warn_learned_probe(cfg: StudyConfig, route: str) -> None:
    """At gridsize 1 each pattern's patch can absorb the probe's error (the loss never ties
    two patches together), so a learned probe is weakly determined: say so, once."""
    if route == "learn" and cfg.model.gridsize == 1:
        log.warning("probe update (learn) at gridsize 1: each patch can absorb the probe's "
                    "error, so the learned probe moves little (docs/guide/own-scan.md, 'Probe and "
                    "positions'); --probe-update lsqml (the 'iterative' extra) corrects it")


def model_probe_config(cfg: StudyConfig, route: str) -> ProbeConfig:
    """The probe settings the network is built with: a learned probe only on that route."""
    return replace(cfg.probe, probe_update="learn" if route == "learn" else "none")


def report(what: str, before: dict, after: dict, floor: float) -> dict:
    """Log the amplitude MAE before and after, against the noise floor; warn when the update
    changed the fit by less than 5 % while it stays over :data:`POOR_FIT_RATIO` times the
    floor. Returns the record written into ``config.json``."""
    b, a = before["amplitude_mae"], after["amplitude_mae"]
    ratio = a / floor if floor > 0 else math.inf
    log.info("%s: data residual (amplitude MAE) %.4g -> %.4g; Poisson noise floor %.4g "
             "(%.1fx the floor)", what, b, a, floor, ratio)
    poor = ratio > POOR_FIT_RATIO and a > 0.95 * b
    if poor:
        log.warning("%s changed the data residual by %.1f %% and it stays %.1fx the Poisson "
                    "noise floor: if the file's probe is far off, try --probe-update lsqml "
                    "with more --refine-probe-epochs, --probe-update learn, or "
                    "--refine-positions", what, 100 * (1 - a / b) if b > 0 else 0.0, ratio)
    return {"residual_before": before, "residual_after": after, "noise_floor_mae": floor,
            "poor_fit": bool(poor)}


def compare_with_lsqml(info: dict, network: dict) -> None:
    """On the lsqml route: the network's delivered data residual against the LSQML
    refinement's own (both with the refined probe); a warning names the budget flags when
    the network fits the data over 1.5x worse. Adds ``network_over_lsqml`` to ``info``."""
    ref = info.get("residual_after", {}).get("amplitude_mae")
    if not ref:
        return
    ratio = network["amplitude_mae"] / ref
    info["network_over_lsqml"] = ratio
    log.info("data residual of the network's object %.4g = %.2fx the LSQML refinement's %.4g",
             network["amplitude_mae"], ratio, ref)
    if ratio > 1.5:
        log.warning("the network fits the data %.2fx worse than the LSQML refinement: train "
                    "longer (--epochs, --min-steps)", ratio)


def refine_study_probe(cfg: StudyConfig, train: PtychoDataset, test: PtychoDataset,
                       same_scan: bool) -> tuple[PtychoDataset, PtychoDataset, dict]:
    """The lsqml route: both datasets with the probe refined by Pty-chi LSQML on the
    training scan; when :func:`corrects_positions`, the training scan's positions corrected
    too (and the test scan's, when it is the same scan: ``same_scan``)."""
    try:
        import_ptychi()
    except (ImportError, ValueError) as err:
        flag = "--probe-update" if cfg.probe.probe_update != "none" else "--refine-probe-epochs"
        raise StudyError(f"{str(err).splitlines()[0]} [flag {flag}]") from None
    epochs = cfg.training.refine_probe_epochs or DEFAULT_LSQML_EPOCHS
    positions = corrects_positions(cfg, "lsqml")
    if not positions:
        moved = "; positions kept (--refine-positions corrects them)"
    elif cfg.probe.refine_positions is None:
        moved = (f", positions from epoch {default_position_start(epochs)} (auto on a file; "
                 "--no-refine-positions keeps them)")
    else:
        moved = f", positions from epoch {default_position_start(epochs)}"
    log.info("probe update (lsqml): %d Pty-chi LSQML epochs on the training scan (object and "
             "probe%s)", epochs, moved)
    r = refine_probe(train, epochs=epochs, device=cfg.training.device, seed=cfg.training.seed,
                     refine_positions=positions, log_every=max(1, epochs // 5))
    sub = train.select(train.object_selection(r.object_index))
    floor = poisson_floor_mae(sub.diffraction, train.photon_scale, train.bad_pixels)
    info = {"route": "lsqml", "epochs": r.epochs, "time_s": r.time_s,
            **report("probe update (lsqml)", r.residual_before, r.residual_after, floor)}
    train = replace(train, probe=r.probe)
    test = replace(test, probe=r.probe)
    if positions:
        moved = r.position_shift_rms
        log.info("positions corrected: moved %.3f px RMS (largest %.3f px)%s", moved,
                 float(np.max(np.linalg.norm(r.positions_after - r.positions_before, axis=1))),
                 "" if same_scan else "; the test scan is another file: its positions are "
                 "kept")
        info["positions"] = {"moved_rms_px": moved, "pattern_ids": r.pattern_ids.tolist(),
                             "before_px": r.positions_before.tolist(),
                             "after_px": r.positions_after.tolist(),
                             "test_corrected": bool(same_scan)}
        train = with_positions(train, r.pattern_ids, r.positions_after)
        if same_scan:
            test = with_positions(test, r.pattern_ids, r.positions_after)
    return train, test, info


def scored_at_corrected_positions(info: dict) -> bool:
    """Whether the probe update's record ``info`` (``config.json``'s ``probe_update``) says
    the test scan's positions were corrected (the lsqml route with position correction, on
    the training scan itself): the object's frame is then not the ground truth's, and every
    score of that scan registers the translation (``ptycho.evaluation``)."""
    return bool((info.get("positions") or {}).get("test_corrected"))


__all__ = ["POOR_FIT_RATIO", "compare_with_lsqml", "corrects_positions", "model_probe_config",
           "poisson_floor_mae", "refine_study_probe", "report", "resolve_route",
           "scored_at_corrected_positions", "warn_learned_probe"]
