"""What a score means on one scan: the metrics of simple reference objects, and the
training loss of the true amplitude with no phase.

A metric is easier to read next to what trivial or degraded objects score on the same
region (``docs/guide/studies.md``, "Reading the metrics"):

- ``flat``: the mean ground-truth amplitude everywhere, zero phase;
- ``true_amplitude_zero_phase``: the ground-truth amplitude with zero phase (what the phase
  metrics give when no phase is reconstructed at all);
- ``blurred_sigma<s>``: the ground truth (real and imaginary parts) blurred by a Gaussian of
  ``s`` pixels.

:func:`truth_residuals` gives the normalized amplitude MAE (the training loss, over the
measured patterns) of the true object's patches (the noise level of the data) and of
their amplitude with zero phase. A network whose loss is still above the second one fits
the patterns worse than an object with the right amplitude and no phase.
"""
from __future__ import annotations

import numpy as np

from ptycho.evaluation import evaluate_reconstruction
from ptycho.io import load_dataset
from ptycho.metric_catalogue import metrics
from ptycho.study_metrics import format_crossing, format_number
from ptycho_torch.cli import refuse
from ptycho_torch.core.residual import data_residual
from ptycho.geometry.patches import subpixel_cuts
from ptycho_torch.studies.options.reference_levels import (  # noqa: F401  (re-exported: imported from here)
    DEFAULT_SIGMAS,
    LevelsOptions,
    parse_levels,
    parse_sigmas,
)


def reference_objects(gt: np.ndarray, sigmas=DEFAULT_SIGMAS) -> dict[str, np.ndarray]:
    """``{name: (H, W) complex64 object}`` for the ground truth ``gt`` (H, W) complex."""
    from scipy.ndimage import gaussian_filter

    gt = np.asarray(gt)
    if gt.ndim != 2 or not np.iscomplexobj(gt):
        raise ValueError(f"ground truth has shape {gt.shape} and dtype {gt.dtype} "
                         "(expected a 2-D complex array)")
    amp = np.abs(gt)
    out = {"flat": np.full(gt.shape, amp.mean(), dtype=np.complex64),
           "true_amplitude_zero_phase": amp.astype(np.complex64)}
    for s in sigmas:
        if not s > 0:
            raise ValueError(f"blur sigma={s!r} is out of range (allowed: > 0 pixels)")
        out[f"blurred_sigma{s:g}"] = (gaussian_filter(gt.real, s)
                                      + 1j * gaussian_filter(gt.imag, s)).astype(np.complex64)
    return out


def reference_scores(gt: np.ndarray, sigmas=DEFAULT_SIGMAS, *, trim: int = 2) -> dict[str, dict]:
    """``{name: evaluate_reconstruction(object, gt)}`` over :func:`reference_objects` (made
    from ``gt`` in its own frame: never registered)."""
    return {name: evaluate_reconstruction(obj, gt, trim=trim)
            for name, obj in reference_objects(gt, sigmas).items()}


def truth_residuals(dataset) -> dict[str, float]:
    """Normalized amplitude MAE (:func:`ptycho_torch.core.residual.data_residual`) of the
    true object's patches and of their amplitude with zero phase, over the patterns of the
    objects whose ground truth ``dataset`` holds (``ground_truth_all``, else object 0's
    ``ground_truth``), cut as the far-field model does at sub-pixel positions
    (:func:`ptycho.geometry.patches.subpixel_cuts`), so the first value is the data's
    noise level at any scan positions.

    Returns ``{"true_object", "true_amplitude_zero_phase", "n_patterns"}``.
    """

    objects = dataset.ground_truth_all
    if objects is None and dataset.ground_truth is not None:
        objects = dataset.ground_truth[None]
    if objects is None:
        raise ValueError(f"dataset '{dataset.path}': key 'YY_ground_truth' is missing (expected "
                         "the ground truth of the scanned object)")
    keep = np.flatnonzero(dataset.object_index < len(objects))
    centres, diffraction = dataset.centres[keep], dataset.diffraction[keep]
    patches = np.empty(diffraction.shape, dtype=np.complex64)
    shifts = np.empty(diffraction.shape[:-2] + (2,), dtype=np.float64)
    for k in range(len(objects)):
        sel = dataset.object_index[keep] == k
        patches[sel], shifts[sel] = subpixel_cuts(objects[k], centres[sel], dataset.N)
    res = {name: data_residual(p, diffraction, dataset.probe, bad_pixels=dataset.bad_pixels,
                               probe_shifts=shifts)
           for name, p in (("true_object", patches),
                           ("true_amplitude_zero_phase", np.abs(patches).astype(np.complex64)))}
    return {"true_object": res["true_object"]["amplitude_mae"],
            "true_amplitude_zero_phase": res["true_amplitude_zero_phase"]["amplitude_mae"],
            "n_patterns": int(keep.size)}


# ------------------------------------------------------------------------ CLI
def read_recon(path) -> tuple[np.ndarray, np.ndarray]:
    """``(reconstruction, ground_truth)`` of a study's ``recon.npz`` (no pickles)."""
    from pathlib import Path
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"recon file '{path}' does not exist (expected a study's "
                         "recons/<model_id>/recon.npz)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("reconstruction", "ground_truth") if k not in z.files]
            if missing:
                raise ValueError(f"recon file '{path}': key '{missing[0]}' is missing (expected "
                                 "a study's recon.npz of a scan with ground truth)")
            rec, gt = z["reconstruction"], z["ground_truth"]
    except (OSError, EOFError) as err:  # not a zip / truncated
        raise ValueError(f"recon file '{path}' cannot be read as NPZ ({err})") from None
    if rec.shape != gt.shape:
        raise ValueError(f"recon file '{path}': reconstruction {rec.shape} and ground_truth "
                         f"{gt.shape} differ (expected equal shapes)")
    return rec, gt


#: the columns of :func:`levels_table`
LEVEL_COLUMNS = metrics("amp_ssim", "phase_ssim", "amp_psnr", "phase_psnr", "phase_correlation",
                        "amp_frc50")


def levels_table(rows: dict[str, dict]) -> str:
    """Markdown table of ``{name: evaluate_reconstruction(...)}``."""
    head = ["object"] + [m.header for m in LEVEL_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        m = r["metrics"]
        cells = [name] + [format_number(m[c.record][c.channel], 4) for c in LEVEL_COLUMNS[:4]]
        cells += [format_number(r["phase_correlation"], 3),
                  format_crossing(m["frc50"][0], r["frc50_censored"][0], 4)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def level_rows(o: LevelsOptions) -> dict[str, dict]:
    """The scores of ``o.recon`` (one scan's reconstructions) and of the reference objects."""
    recons = [(path, *read_recon(path)) for path in o.recon]
    gt = recons[0][2]
    rows = {}
    for path, rec, other_gt in recons:
        if other_gt.shape != gt.shape or not np.array_equal(other_gt, gt):
            raise ValueError(f"recon file '{path}': its ground truth differs from that of "
                             f"'{o.recon[0]}' (expected reconstructions of one scan)")
        rows[str(path)] = evaluate_reconstruction(rec, gt, register=o.register)
    rows.update(reference_scores(gt, o.sigmas))
    return rows


def report(o: LevelsOptions) -> int:
    """Print the reference levels next to ``o.recon``; 2 (one ``error:`` line) when a file
    is refused."""
    try:
        rows = level_rows(o)
        residuals = truth_residuals(load_dataset(o.test_npz)) if o.test_npz else None
    except ValueError as err:
        return refuse(err)
    print(levels_table(rows))
    if residuals is not None:
        print(f"training loss (normalized amplitude MAE) over {residuals['n_patterns']} patterns "
              f"of {o.test_npz}: true object {residuals['true_object']:.4f}, true amplitude "
              f"with zero phase {residuals['true_amplitude_zero_phase']:.4f}")
    return 0


def main(argv=None, prog: str = "reference_levels.py") -> int:
    """Print the reference levels next to the given reconstructions; exit 2 on bad input
    (in this process; the script calls
    :func:`ptycho_torch.studies.commands.reference_levels_main`: its flags checked before
    torch loads)."""
    try:
        o = parse_levels(argv, prog)
    except ValueError as err:
        return refuse(err)
    return report(o)
