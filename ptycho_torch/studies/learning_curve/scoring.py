"""How a learning-curve point, the reference row and the LSQML reference are scored."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

from ptycho.config.validation import StudyError
from ptycho.metric_catalogue import CATALOGUE
from ptycho.metric_catalogue import metrics as catalogue
from ptycho.study_metrics import StudyMetrics
from ptycho_torch.core.residual import test_object_residuals, whole_object_residual
from ptycho_torch.ptychi.baseline import reconstruct_iterative
from ptycho.reconstruction import score


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


SCORES = catalogue("amp_ssim", "phase_ssim", "amp_psnr", "phase_psnr")
FRC50 = catalogue("amp_frc50", "phase_frc50")


def summary_of(metrics: dict, phase_correlation, residual: dict | None,
               frc50_censored=None) -> dict:
    """The flat numbers of a point or a reference: ``{name: [amplitude, phase]}`` metrics
    (``psnr``, ``ssim``, ``frc50``) picked out, plus phase correlation and data residual.
    An FRC50 never crossed is NaN with its label in ``amp_frc50_censored`` /
    ``phase_frc50_censored`` (``">= 0.5"``; None when measured)."""
    residual = residual or {}
    cens = list(frc50_censored or [None, None])
    out = {m.key: _num(metrics[m.record][m.channel]) for m in SCORES}
    out["phase_correlation"] = _num(phase_correlation)
    out.update({m.key: _num(metrics[m.record][m.channel]) for m in FRC50})
    out.update({f"{m.key}_censored": c for m, c in zip(FRC50, cens)})
    out["data_residual"] = _num(residual.get(CATALOGUE["data_residual"].channel))
    return out


def score_reconstruction(rec, test, photon_scale: float, *, network: bool = True) -> dict:
    """Metrics of a reconstruction of test object 0 (with ground truth) and its data
    residual, as a point's fields (plus the full ``metrics`` dict). A network's
    ``data_residual`` is that of its stitched object and ``patch_residual`` that of its raw
    patches (``ptycho_torch.core.residual.network_residuals``); an iterative object's is
    taken from the object itself (``network=False``)."""
    result, _ = score(rec)
    if network:
        residual, patches = test_object_residuals(rec, test, photon_scale=photon_scale)
    else:
        sub = test.select(test.object_selection(0))
        residual, patches = whole_object_residual(rec, sub, test.probe,
                                                  photon_scale=photon_scale,
                                                  bad_pixels=test.bad_pixels), None
    out = summary_of(result["metrics"], result["phase_correlation"], residual,
                     result["frc50_censored"])
    out.update(phase_strength_ratio=_num(result["phase_strength_ratio"]),
               metrics=result["metrics"], data_residual_all=residual,
               inference_time_s=rec.inference_time_s)
    if patches is not None:
        out["patch_residual"] = _num(patches.get("amplitude_mae"))
    return out


def read_reference(path: str) -> dict:
    """The reference level of a ``metrics.json`` (scored against ground truth)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
        m = StudyMetrics.from_json(data)
    except (OSError, ValueError, TypeError) as err:
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        raise StudyError(f"reference '{p}': cannot read ({reason}) (expected a metrics.json "
                         "written by a study or a comparison) [flag --reference-json]") from None
    if not m.ground_truth or m.ssim is None or m.psnr is None:
        raise StudyError(f"reference '{p}': key 'ssim' is null (expected a metrics.json scored "
                         "against ground truth) [flag --reference-json]")
    metrics = {k: [m.value(k, 0), m.value(k, 1)] for k in ("psnr", "ssim", "frc50")}
    ref = {"model_id": m.model_id, "label": m.model_id, "source": str(p), "kind": m.kind}
    ref.update(summary_of(metrics, m.phase_correlation, m.data_residual,
                          [m.censored("frc50", 0), m.censored("frc50", 1)]))
    ref["time_s"] = m.inference_time_s if m.kind == "iterative" else m.train_time_s
    return ref


def lsqml_reference(test, epochs: int, device: str, seed: int, photon_scale: float, *,
                    inference=None) -> dict:
    """Pty-chi LSQML on test object 0 (known probe and positions), scored like a point."""
    t0 = time.perf_counter()
    rec, res = reconstruct_iterative("lsqml", test, epochs=epochs, device=device, seed=seed,
                                     inference=inference)
    ref = {"model_id": "ptychi_lsqml", "label": f"ptychi_lsqml ({res.epochs} epochs)",
           "source": f"Pty-chi LSQML, {res.epochs} epochs, run by the learning curve",
           "kind": "iterative"}
    scored = score_reconstruction(rec, test, photon_scale, network=False)
    ref.update({k: v for k, v in scored.items() if k not in ("metrics", "data_residual_all",
                                                             "inference_time_s")})
    ref["time_s"] = time.perf_counter() - t0
    ref["epochs"] = int(res.epochs)
    return ref


def machine_info(accelerator: str) -> dict:
    info = {"platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "device": accelerator, "cuda_device": None}
    if accelerator == "cuda" and torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info
