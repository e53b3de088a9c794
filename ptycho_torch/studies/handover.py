"""Live, then LSQML: the end of a ``ptycho-live --refine lsqml`` run against LSQML from a
flat start, on a scan with known truth (``scripts/studies/live_handover.py``).

Both objects are scored against the truth on one region of the truth's frame, the region
every row of a study is scored on (:func:`ptycho.reconstruction.scored_region` with the
default inference settings), by the study's scorer (:func:`ptycho.evaluation.
evaluate_reconstruction`: global phase offset and phase plane removed, amplitude scale
fitted, no translation registered: both use the scan's true positions). A live product's
object is placed in that frame by the one whole-pixel shift that maps its positions onto the
scan's (:func:`product_origin`). The data residual of each is the amplitude MAE of the
object re-simulated at every position (:func:`ptycho_torch.core.residual.
whole_object_residual`): the live one as ``live.json`` ``refined`` records it.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ptycho.config.config import InferenceConfig
from ptycho.dataset import PtychoDataset
from ptycho.evaluation import evaluate_reconstruction
from ptycho.formats.geometry import metres_to_pixels
from ptycho.formats.ptychodus_product import read_product
from ptycho.reconstruction import scored_region
from ptycho_torch.core.residual import whole_object_residual
from ptycho_torch.ptychi.baseline import iterative_reconstruction
from ptycho_torch.ptychi.engine import PtychiOptions, reconstruct
from ptycho_torch.ptychi.scan import scan_for_ptychi
from ptycho_torch.studies.sweep import stats

#: the largest departure (px) of a product's positions from the scan's, once shifted
POSITION_TOLERANCE_PX = 1e-3
#: the columns of one seed's row that get a mean and range in the summary
SUMMARY_KEYS = ("live_end_s", "live_phase_corr", "live_residual", "network_phase_corr",
                "flat_s", "flat_phase_corr", "flat_residual", "time_ratio")


def product_origin(product: dict, centres_px: np.ndarray) -> tuple[int, int]:
    """``(row0, col0)`` of a product's object corner in the frame of the scan positions
    ``centres_px`` ((n, 2) ``(x, y)`` pixels, the product's frames in the same order): the
    one whole-pixel shift that maps the product's positions onto them. ``ValueError`` when
    the counts differ or no such shift exists."""
    pos = metres_to_pixels(product["x_m"], product["y_m"], product["object_center_m"],
                           product["object_pixel_m"], product["object_shape"])
    centres = np.asarray(centres_px, np.float64).reshape(-1, 2)
    if pos.shape != centres.shape:
        raise ValueError(f"product has {len(pos)} positions and the scan {len(centres)} "
                         "(expected every frame of the scan, in its order)")
    diff = centres - pos
    shift = np.round(diff.mean(axis=0))
    off = float(np.abs(diff - shift).max())
    if off > POSITION_TOLERANCE_PX:
        raise ValueError(f"product positions are not the scan's moved by one whole-pixel shift "
                         f"(largest departure {off:.3g} px, allowed {POSITION_TOLERANCE_PX} px)")
    return int(shift[1]), int(shift[0])


def score_on_region(obj: np.ndarray, origin: tuple[int, int], truth: np.ndarray,
                    region, trim: int = 2) -> dict:
    """Phase correlation, SSIM and PSNR of ``obj`` (its corner at ``origin`` = ``(row0,
    col0)`` of the truth's frame) against ``truth`` on ``region`` ``(row0, col0, height,
    width)`` of that frame. ``ValueError`` when ``obj`` does not cover the region."""
    r0, c0, h, w = (int(v) for v in region)
    rr, cc = r0 - origin[0], c0 - origin[1]
    if rr < 0 or cc < 0 or rr + h > obj.shape[0] or cc + w > obj.shape[1]:
        raise ValueError(f"the object ({obj.shape[0]} x {obj.shape[1]} at row {origin[0]}, "
                         f"column {origin[1]}) does not cover the scored region {tuple(region)}")
    res = evaluate_reconstruction(obj[rr:rr + h, cc:cc + w], truth[r0:r0 + h, c0:c0 + w],
                                  trim=trim)
    m = res["metrics"]
    return {"phase_corr": float(res["phase_correlation"]), "amp_ssim": float(m["ssim"][0]),
            "phase_ssim": float(m["ssim"][1]), "amp_psnr": float(m["psnr"][0]),
            "phase_psnr": float(m["psnr"][1])}


def truth_region(data: PtychoDataset) -> tuple[int, int, int, int]:
    """The scored region of a study on ``data`` (module docstring)."""
    r0, c0, h, w = scored_region(data, InferenceConfig())
    return int(r0), int(c0), int(h), int(w)


def flat_lsqml(data: PtychoDataset, *, epochs: int, seed: int, device: str = "cpu",
               every: int | None = None) -> dict:
    """LSQML from a flat start for ``epochs`` epochs on ``data`` (the scan's probe and
    positions, fixed): its seconds (the task build and the epochs, after one untimed
    warm-up epoch, as every study's iterative row), the wall seconds of the whole call
    (``wall_s``), its data residual and its scores against the truth; with ``every``, the
    phase correlation of the same run every ``every`` epochs (``curve``: epoch, seconds so
    far, phase corr; the reads are not timed) and the best of them (``best``)."""
    scan = scan_for_ptychi(data, 0)
    t0 = time.perf_counter()
    res, states = reconstruct(scan, PtychiOptions("lsqml", epochs=epochs, device=device,
                                                  seed=seed), every=every)
    wall = time.perf_counter() - t0
    truth, region = truth_of(data), truth_region(data)
    rec = iterative_reconstruction(data, res.obj, time_s=res.time_s, n_patterns=res.n_patterns,
                                   batch_size=res.batch_size)
    residual = whole_object_residual(rec, data.select(data.object_selection(0)), data.probe,
                                     photon_scale=data.photon_scale, bad_pixels=data.bad_pixels)
    out = {"epochs": int(epochs), "seconds": float(res.time_s), "wall_s": wall,
           "data_residual": float(residual["amplitude_mae"]),
           **score_on_region(res.obj, (0, 0), truth, region)}
    if every is not None:
        out["curve"] = [{"epoch": int(e), "seconds": float(t), "phase_corr": score_on_region(
            obj, (0, 0), truth, region)["phase_corr"]} for e, obj, t in states]
        out["best"] = max(out["curve"], key=lambda c: c["phase_corr"])
    return out


def truth_of(data: PtychoDataset) -> np.ndarray:
    """The ground truth object (H, W) of ``data``; ``ValueError`` without one."""
    if data.ground_truth is None:
        raise ValueError(f"dataset '{data.path}' has no ground truth (expected one written "
                         "by make_example_scan.py --from ... --layouts dataset)")
    gt = np.asarray(data.ground_truth)
    return gt.reshape(gt.shape[:2])


def live_scores(live_dir: Path, data: PtychoDataset) -> dict:
    """The network's canvas (``product-live.h5``) and the polished object
    (``product-out.h5``) of a finished ``ptycho-live --refine lsqml`` run on the scan of
    ``data``, scored against its truth, with ``live.json``'s residuals and seconds."""
    status = json.loads((Path(live_dir) / "live.json").read_text())
    refined = status.get("refined")
    if not refined:
        raise ValueError(f"'{Path(live_dir) / 'live.json'}' has no 'refined' entry "
                         "(expected a ptycho-live run with --refine lsqml)")
    centres, truth, region = data.centres[:, 0], truth_of(data), truth_region(data)
    out: dict = {}
    for name, file in (("network", "product-live.h5"), ("polished", "product-out.h5")):
        product = read_product(Path(live_dir) / file)
        out[name] = score_on_region(product["object"], product_origin(product, centres),
                                    truth, region)
    out["network"]["data_residual"] = float(status["data_residual"]["amplitude_mae"])
    out["polished"]["data_residual"] = float(refined["data_residual"]["amplitude_mae"])
    out["refined"] = {k: refined[k] for k in ("epochs", "network_s", "polish_s", "lsqml_s",
                                              "seconds")}
    out["frames"] = int(status["frames"])
    return out


def seed_row(seed: int, live: dict, flat: dict, live_process_s: float) -> dict:
    """One seed's row of the table: the live run's end against the flat start."""
    end = float(live["refined"]["seconds"])
    return {"seed": int(seed), "live_end_s": end, "live_process_s": float(live_process_s),
            "live_phase_corr": live["polished"]["phase_corr"],
            "live_residual": live["polished"]["data_residual"],
            "network_phase_corr": live["network"]["phase_corr"],
            "flat_s": float(flat["seconds"]), "flat_phase_corr": flat["phase_corr"],
            "flat_residual": flat["data_residual"], "time_ratio": end / float(flat["seconds"]),
            **({"flat_best_phase_corr": flat["best"]["phase_corr"],
                "flat_best_epoch": flat["best"]["epoch"],
                "flat_best_s": flat["best"]["seconds"]} if "best" in flat else {})}


def summary(rows: list[dict]) -> dict:
    """Mean, min and max of each :data:`SUMMARY_KEYS` column over the seeds' rows (and of
    the flat run's best phase correlation and its seconds, when recorded), and
    whether the target holds on every seed: the polished phase correlation at least the
    flat start's, in less than half its time."""
    out: dict = {"seeds": [r["seed"] for r in rows]}
    best = ("flat_best_phase_corr", "flat_best_s") if all("flat_best_s" in r for r in rows) else ()
    for key in SUMMARY_KEYS + best:
        out[key] = stats([float(r[key]) for r in rows])
    out["target_met_every_seed"] = bool(all(
        r["live_phase_corr"] >= r["flat_phase_corr"] and r["time_ratio"] < 0.5 for r in rows))
    return out


def _cell(s: dict, key: str, fmt: str) -> str:
    v = s[key]
    if math.isclose(v["min"], v["max"]):
        return format(v["mean"], fmt)
    return f"{v['mean']:{fmt}} ({v['min']:{fmt}}..{v['max']:{fmt}})"


def table(rows: list[dict], s: dict, refine_epochs: int, flat_epochs: int) -> str:
    """The Markdown table: one line per seed, then the mean and range; with the flat run's
    curve, a last column: its best phase correlation (the epoch, its seconds)."""
    cols = [("live_end_s", ".1f"), ("live_phase_corr", ".4f"), ("live_residual", ".4f"),
            ("flat_s", ".1f"), ("flat_phase_corr", ".4f"), ("flat_residual", ".4f"),
            ("time_ratio", ".2f")]
    curve = "flat_best_s" in s
    head = (f"| seed | live end: network + {refine_epochs} LSQML epochs (s) | its phase corr | "
            f"its residual | flat LSQML {flat_epochs} epochs (s) | its phase corr | "
            "its residual | time ratio |" + (" flat's best phase corr (when) |" if curve
                                              else ""))
    lines = [head, "|" + "---|" * (len(cols) + 1 + curve)]
    for r in rows:
        best = (f" {r['flat_best_phase_corr']:.4f} (epoch {r['flat_best_epoch']}, "
                f"{r['flat_best_s']:.1f} s) |" if curve else "")
        lines.append(f"| {r['seed']} | " + " | ".join(format(r[k], f) for k, f in cols)
                     + " |" + best)
    best = (f" {_cell(s, 'flat_best_phase_corr', '.4f')}; {_cell(s, 'flat_best_s', '.1f')} s"
            " |" if curve else "")
    lines.append("| mean (range) | " + " | ".join(_cell(s, k, f) for k, f in cols) + " |"
                 + best)
    return "\n".join(lines)
