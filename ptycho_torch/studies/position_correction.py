"""How well the lsqml route corrects scan positions, on a scan with known truth.

For a dataset written by ``scripts/studies/make_example_scan.py --from FILE`` (the true
object as ground truth, the true positions in its metadata, ``true_positions_px``), three
LSQML probe refinements of the same length (object and probe, Pty-chi): with the scan's
positions fixed (``given``), with them corrected (``corrected``, what ``--probe-update auto``
does on a file, or ``--refine-positions``) and
with the true positions fixed (``true``, the reference). Reported: the RMS position error
before and after (also with the mean shift removed: a global shift of every position is
not determined by the data), the data residual of each object (sub-pixel exact, with the
positions that row used), and the amplitude / phase SSIM and PSNR and the phase correlation
of each object against the truth, on the region every row of a study is scored on. The
``given`` and ``corrected`` objects sit in the frame of positions that are not the true
ones, so they are scored with the translation registered (``ptycho.evaluation``), and the
removed translation is reported (``registration_shift_px``, ``[x, y]``); the ``true`` row is
scored without (``null``).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ptycho.config.config import InferenceConfig
from ptycho.artifacts import write_json_atomic
from ptycho.io import load_dataset
from ptycho_torch.ptychi.baseline import iterative_reconstruction
from ptycho_torch.ptychi.probe import position_rms, refine_probe, with_positions
from ptycho.reconstruction import score
from ptycho_torch.engine.threads import apply_num_threads, threads_line
from ptycho_torch.studies.options.position_correction import (  # noqa: F401  (re-exported: imported from here)
    PositionOptions,
    parse_positions,
    refusal,
)

log = logging.getLogger(__name__)
#: (amplitude, phase) metrics of the scorer, reported as amp_<metric> / phase_<metric>
SCORES = ("amp_ssim", "phase_ssim", "amp_psnr", "phase_psnr")


def _scores(data, obj, register: bool) -> dict:
    rec = iterative_reconstruction(data, obj, time_s=0.0, n_patterns=data.n, batch_size=0,
                                   inference=InferenceConfig())
    result, _ = score(rec, register=register)
    flat = {}
    for key in SCORES:
        channel, metric = key.split("_")
        value = result["metrics"][metric]
        flat[key] = float(value[0] if channel == "amp" else value[1])
    flat["phase_corr"] = float(result["phase_correlation"])
    flat["registration_shift_px"] = result["registration_shift_px"]
    return flat


def run_position_study(path, *, epochs: int = 50, seed: int = 0, device: str = "cpu") -> dict:
    """The three refinements of the module docstring on the dataset ``path``."""
    data = load_dataset(path, require_ground_truth=True)
    true_xy = np.asarray(data.metadata.get("true_positions_px"), dtype=np.float64)
    if true_xy.shape != (data.n, 2):
        raise ValueError(f"dataset '{path}': _metadata key 'true_positions_px' has shape "
                         f"{true_xy.shape} (expected ({data.n}, 2), written by "
                         "make_example_scan.py --from)")
    ids = data.pattern_ids()[:, 0]
    given_xy = data.centres[:, 0].astype(np.float64)
    out = {"dataset": str(path), "epochs": epochs, "n_patterns": data.n,
           "rms_error_given_px": position_rms(given_xy, true_xy)}
    runs = {"given": (data, False), "corrected": (data, True),
            "true": (with_positions(data, ids, true_xy), False)}
    for name, (d, correct) in runs.items():
        r = refine_probe(d, epochs=epochs, device=device, seed=seed, refine_positions=correct)
        row = {"time_s": r.time_s, "residual": r.residual_after["amplitude_mae"],
               **_scores(d, r.object_after, register=name != "true")}
        if correct:
            after = r.positions_after
            shift = np.mean(after - true_xy, axis=0)
            row.update(rms_error_px=position_rms(after, true_xy),
                       rms_error_mean_removed_px=position_rms(after - shift, true_xy),
                       mean_shift_px=shift.tolist())
        log.info("%s: %s", name, json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                             for k, v in row.items()}))
        out[name] = row
    return out




def run(a: PositionOptions) -> int:
    """The study of the checked options ``a``, its JSON written to ``a.output`` (its path
    printed); 2 (one ``error:`` line) when the dataset is refused."""
    try:
        print(threads_line(*apply_num_threads(a.num_threads)), flush=True)
        result = run_position_study(a.dataset, epochs=a.epochs, seed=a.seed)
    except (OSError, ValueError) as err:
        return refusal(err)
    print(write_json_atomic(Path(a.output), result))
    return 0
