"""What a score means on one scan: the metrics of simple reference objects, and the
training loss of the true amplitude with no phase.

A metric is easier to read next to what trivial or degraded objects score on the same
region (``docs/studies.md``, "Reading the metrics"):

- ``flat``: the mean ground-truth amplitude everywhere, zero phase;
- ``true_amplitude_zero_phase``: the ground-truth amplitude with zero phase (what the phase
  metrics give when no phase is reconstructed at all);
- ``blurred_sigma<s>``: the ground truth (real and imaginary parts) blurred by a Gaussian of
  ``s`` pixels.

:func:`label_residuals` gives the normalized amplitude MAE (the training loss, over the
measured patterns) of the dataset's own labels: the true exit waves ``norm_Y_I * Y_I *
exp(i (Y_phi + arg P))`` (the noise level of the data) and the same with ``Y_phi = 0``.
A network whose loss is still above the second one fits the patterns worse than an object
with the right amplitude and no phase.
"""
from __future__ import annotations

import numpy as np

from ptycho.evaluation import evaluate_reconstruction

DEFAULT_SIGMAS = (1.0, 2.0, 4.0)


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
    """``{name: evaluate_reconstruction(object, gt)}`` over :func:`reference_objects`."""
    return {name: evaluate_reconstruction(obj, gt, trim=trim)
            for name, obj in reference_objects(gt, sigmas).items()}


def label_residuals(dataset, *, batch_size: int = 256) -> dict[str, float]:
    """Normalized amplitude MAE ``sum|A - A_meas| / sum A_meas`` of the labels' exit waves.

    ``dataset``: a :class:`ptycho.dataset.PtychoDataset` with labels ``Y_I``, ``Y_phi`` and
    one probe mode. Returns ``{"true_exit_wave": ..., "true_amplitude_zero_phase": ...}``.
    """
    import torch

    from ptycho_torch.physics import far_field

    if dataset.Y_I is None or dataset.Y_phi is None:
        raise ValueError(f"dataset '{dataset.path}': keys 'Y_I' and 'Y_phi' are missing "
                         "(expected the labels of a simulated dataset)")
    probe = np.asarray(dataset.probe)
    if probe.ndim != 2:
        raise ValueError(f"dataset '{dataset.path}': probe has shape {probe.shape} "
                         "(expected one mode, (N, N))")
    carrier = torch.as_tensor(np.exp(1j * np.angle(probe)).astype(np.complex64))
    sums = {"true_exit_wave": 0.0, "true_amplitude_zero_phase": 0.0}
    measured = 0.0
    for start in range(0, dataset.n, batch_size):
        sl = slice(start, start + batch_size)
        amp = torch.as_tensor(dataset.Y_I[sl], dtype=torch.float64) * float(dataset.norm_Y_I)
        phase = torch.as_tensor(dataset.Y_phi[sl], dtype=torch.float64)
        meas = torch.as_tensor(dataset.diffraction[sl], dtype=torch.float64)
        measured += float(meas.sum())
        for name, ph in (("true_exit_wave", phase), ("true_amplitude_zero_phase", None)):
            psi = amp.to(torch.complex128) if ph is None else torch.polar(amp, ph)
            pred = far_field(psi * carrier.to(torch.complex128)).abs()
            sums[name] += float((pred - meas).abs().sum())
    return {k: v / max(measured, 1e-300) for k, v in sums.items()}


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


def levels_table(rows: dict[str, dict]) -> str:
    """Markdown table of ``{name: evaluate_reconstruction(...)}``."""
    from ptycho.study_metrics import format_number
    head = ["object", "amp SSIM", "phase SSIM", "amp PSNR", "phase PSNR", "phase corr",
            "amp FRC50"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        m = r["metrics"]
        cells = [name] + [format_number(m[k][c], 4) for k, c in
                          (("ssim", 0), ("ssim", 1), ("psnr", 0), ("psnr", 1))]
        cells += [format_number(r["phase_correlation"], 3), format_number(m["frc50"][0], 4)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None, prog: str = "reference_levels.py") -> int:
    """Print the reference levels next to the given reconstructions; exit 2 on bad input."""
    import argparse

    from ptycho_torch.cli import refuse
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("recon", nargs="+", help="a study's recons/<model_id>/recon.npz; the first "
                   "one's ground truth (clipped to its region) defines the reference objects")
    p.add_argument("--test-npz", help="the test dataset: adds the label residuals "
                   "(needs its Y_I / Y_phi labels)")
    p.add_argument("--sigmas", default=",".join(f"{s:g}" for s in DEFAULT_SIGMAS),
                   help="Gaussian blurs of the ground truth in pixels, comma-separated")
    args = p.parse_args(argv)
    try:
        try:
            sigmas = tuple(float(s) for s in args.sigmas.split(","))
        except ValueError:
            raise ValueError(f"--sigmas={args.sigmas!r} is not a comma-separated list of "
                             "numbers (allowed: e.g. 1,2,4)") from None
        recons = [(path, *read_recon(path)) for path in args.recon]
        gt = recons[0][2]
        rows = {}
        for path, rec, other_gt in recons:
            if other_gt.shape != gt.shape or not np.array_equal(other_gt, gt):
                raise ValueError(f"recon file '{path}': its ground truth differs from that of "
                                 f"'{args.recon[0]}' (expected reconstructions of one scan)")
            rows[str(path)] = evaluate_reconstruction(rec, gt)
        rows.update(reference_scores(gt, sigmas))
        residuals = None
        if args.test_npz:
            from ptycho.io import load_dataset
            residuals = label_residuals(load_dataset(args.test_npz))
    except ValueError as err:
        return refuse(err)
    print(levels_table(rows))
    if residuals is not None:
        print(f"normalized amplitude MAE of the labels ({args.test_npz}): true exit waves "
              f"{residuals['true_exit_wave']:.4f}, true amplitude with zero phase "
              f"{residuals['true_amplitude_zero_phase']:.4f}")
    return 0
