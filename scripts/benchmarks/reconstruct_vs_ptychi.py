#!/usr/bin/env python
"""Reconstructing one test scan: trained network (inference + stitch) vs Pty-chi LSQML.

Both reconstruct test object 0 of the same dataset and are scored by the same metrics
code on the same region (``ptycho.reconstruction.score``). The network side is a finished
study (``--study-dir`` with ``runs/<model-id>/model.ckpt``; its config names the test NPZ)
or, without one, a model trained here first with the runner (``--preset quick`` values,
``--train-minutes``; training time reported separately: it is paid once per dataset
family, the reconstruction time per scan). Pty-chi runs LSQML for ``--epochs`` (100) with
the known probe and positions (``ptycho_torch.ptychi``). Prints one table and the
time ratio Pty-chi / network. Without Pty-chi (the optional extra ``iterative``) it says
so and prints the network side only.

Usage::

    python scripts/benchmarks/reconstruct_vs_ptychi.py [--smoke] \\
        [--study-dir outputs/grid_lines_compare_quick --model-id pinn_fno] \\
        [--epochs 100] [--device cpu|cuda|auto] [--json PATH]

On CPU both sides use one torch thread (``--threads``). ``--smoke``: a tiny dataset,
one training epoch, 3 LSQML epochs (CI).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
for _p in (str(_REPO), str(_REPO / "scripts" / "studies")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import torch  # noqa: E402
from bench_common import add_common_args, quiet_lightning, select_device, write_json  # noqa: E402

from ptycho.config.choices import ARCHITECTURES  # noqa: E402
from ptycho.study_metrics import format_crossing  # noqa: E402
from ptycho_torch.engine.malloc import keep_freed_memory  # noqa: E402

SMOKE_FLAGS = dict(N=32, object_size=64, n_lines=40, train_stride=4, test_stride=8,
                   n_train_objects=1, n_test_objects=1, epochs=1, batch_size=16, fno_width=8,
                   fno_modes=4, fno_blocks=1, fno_cnn_blocks=1, max_train_minutes=0.0)


def train_study(work_dir: Path, architecture: str, minutes: float, smoke: bool, device: str) -> dict:
    """Train one model with the runner into ``work_dir``; returns its metrics dict."""
    import grid_lines_torch_runner as runner
    extra = dict(SMOKE_FLAGS) if smoke else {"max_train_minutes": float(minutes)}
    cfg = runner.from_preset("quick", architecture=architecture, output_dir=str(work_dir),
                             progress_bar=False, overwrite=True, device=device, **extra)
    return runner.run_grid_lines_torch(cfg)


def load_study(study_dir: Path, model_id: str, device: torch.device):
    """(model on device, test dataset, its InferenceConfig, training info) of a finished
    study: the scored scan is re-read from the file its config.json names, in the study's
    unit and geometry."""
    from ptycho.config.study_config import StudyConfig
    from ptycho.formats.readers import read_dataset
    from ptycho_torch.model.checkpoint import load_model
    run = study_dir / "runs" / model_id
    ckpt, cfg_path = run / "model.ckpt", run / "config.json"
    for p in (ckpt, cfg_path):
        if not p.is_file():
            raise ValueError(f"--study-dir: {p} is missing (allowed: the output dir of a finished study "
                             f"that contains runs/{model_id}/model.ckpt and config.json)")
    saved = json.loads(cfg_path.read_text())
    cfg = StudyConfig.from_dict(saved["study"])
    test = read_dataset(saved["data"]["test_npz"], N=cfg.model.N, gridsize=cfg.model.gridsize,
                        unit=cfg.run.data_unit)
    if test.ground_truth is None:
        raise ValueError(f"--study-dir: the scored scan {saved['data']['test_npz']} has no ground "
                         "truth (allowed: a study whose test scan has one, to score both methods)")
    model = load_model(ckpt, "cpu", flag="--study-dir").to(device).eval()  # weights only
    metrics = {}
    if (run / "metrics.json").is_file():
        metrics = json.loads((run / "metrics.json").read_text())
    return model, test, cfg.inference, metrics


def time_network(model, test, inference, repeats: int):
    """Median (inference + stitch) seconds over ``repeats`` (after a warm-up) and the scores."""
    from ptycho.reconstruction import score
    from ptycho_torch.engine.inference import reconstruct_test_object
    rec = reconstruct_test_object(model, test, inference)  # warm-up
    times = []
    for _ in range(repeats):
        rec = reconstruct_test_object(model, test, inference)
        times.append(rec.inference_time_s + rec.stitch_time_s)
    result, _ = score(rec)
    return statistics.median(times), rec, result


def _row(method: str, seconds: float, n: int, result: dict) -> dict:
    m = result["metrics"]
    return {"method": method, "seconds": seconds, "patterns_per_s": n / max(seconds, 1e-12),
            "amp_psnr": m["psnr"][0], "phase_psnr": m["psnr"][1], "amp_ssim": m["ssim"][0],
            "phase_ssim": m["ssim"][1],
            "amp_frc50": format_crossing(m["frc50"][0], result["frc50_censored"][0], 3),
            "phase_frc50": format_crossing(m["frc50"][1], result["frc50_censored"][1], 3),
            "phase_correlation": result["phase_correlation"],
            "phase_strength_ratio": result["phase_strength_ratio"]}


def table(rows: list[dict]) -> str:
    head = ["method", "reconstruct s", "patterns/s", "amp PSNR", "phase PSNR", "amp SSIM",
            "phase SSIM", "amp FRC50", "phase FRC50", "phase corr", "phase strength"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        out.append("| " + " | ".join([
            r["method"], f"{r['seconds']:.3g}", f"{r['patterns_per_s']:.4g}",
            f"{r['amp_psnr']:.4g}", f"{r['phase_psnr']:.4g}", f"{r['amp_ssim']:.4g}",
            f"{r['phase_ssim']:.4g}", r["amp_frc50"], r["phase_frc50"],
            f"{r['phase_correlation']:.3f}", f"{r['phase_strength_ratio']:.3f}"]) + " |")
    return "\n".join(out)


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny dataset, 1 training epoch, 3 LSQML epochs")
    p.add_argument("--study-dir", help="output dir of a finished study / comparison to take the model from")
    p.add_argument("--model-id", default="pinn_fno", help="model id inside --study-dir (default pinn_fno)")
    p.add_argument("--architecture", choices=ARCHITECTURES, default="fno",
                   help="architecture trained here when --study-dir is not given")
    p.add_argument("--train-minutes", type=float, default=2.0,
                   help="training budget when --study-dir is not given (default 2)")
    p.add_argument("--epochs", type=int, default=100, help="Pty-chi LSQML epochs (default 100)")
    p.add_argument("--repeats", type=int, default=3, help="timed network reconstructions (median)")
    add_common_args(p, device_default="auto")
    return p.parse_args(argv)


def main(argv=None) -> int:
    keep_freed_memory()  # as every entry point does (ptycho_torch.engine.malloc)
    a = _parse(argv)
    device = select_device(a.device)
    if device is None:
        return 2
    dev = device.type
    epochs = 3 if a.smoke else a.epochs
    repeats = 1 if a.smoke else a.repeats
    for name, v, lo in (("--epochs", epochs, 1), ("--repeats", repeats, 1), ("--threads", a.threads, 1)):
        if v < lo:
            print(f"error: {name}={v} is out of range (allowed: >= {lo})", file=sys.stderr)
            return 2
    if device.type == "cpu":
        torch.set_num_threads(a.threads)
    quiet_lightning("grid_lines_torch_runner")

    from ptycho_torch.ptychi import IterativeUnavailableError, import_ptychi
    from ptycho_torch.ptychi.baseline import reconstruct_iterative
    from ptycho.reconstruction import score
    tmp = None
    try:
        if a.study_dir:
            study_dir, model_id, trained = Path(a.study_dir), a.model_id, None
        else:
            tmp = tempfile.TemporaryDirectory(prefix="recon_vs_ptychi_")
            study_dir, model_id = Path(tmp.name), f"pinn_{a.architecture}"
            t0 = time.perf_counter()
            trained = train_study(study_dir, a.architecture, a.train_minutes, a.smoke, dev)
            trained = {"train_time_s": trained.get("train_time_s"),
                       "wall_s": time.perf_counter() - t0, "epochs": trained.get("epochs_completed")}
        model, test, inference, study_metrics = load_study(study_dir, model_id, device)
        net_s, rec, net_result = time_network(model, test, inference, repeats)
        rows = [_row(f"{model_id} (inference + stitch)", net_s, rec.n_patterns, net_result)]
        ptychi_note = None
        try:
            import_ptychi()
        except IterativeUnavailableError as err:
            ptychi_note = str(err)
        if ptychi_note is None:
            it_rec, res = reconstruct_iterative("lsqml", test, epochs=epochs, device=dev)
            it_result, _ = score(it_rec)
            rows.append(_row(f"Pty-chi LSQML {epochs} epochs", res.time_s, res.n_patterns, it_result))
    except ValueError as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    finally:
        if tmp is not None:
            tmp.cleanup()
    train_s = (trained or {}).get("train_time_s", study_metrics.get("train_time_s"))
    print(f"reconstruct one test scan ({rec.n_patterns} patterns, region {list(rec.region)}), "
          f"device={dev}, threads={torch.get_num_threads() if dev == 'cpu' else None}")
    print(table(rows))
    result = {"meta": {"device": dev, "smoke": a.smoke, "torch": torch.__version__,
                       "python": platform.python_version(), "ptychi_epochs": epochs,
                       "model_id": model_id, "study_dir": a.study_dir, "n_patterns": rec.n_patterns,
                       "network_train_time_s": train_s},
              "rows": rows}
    if ptychi_note is None:
        ratio = rows[1]["seconds"] / rows[0]["seconds"]
        result["time_ratio_ptychi_over_network"] = ratio
        print(f"time ratio Pty-chi / network = {ratio:.1f} (the network's training, "
              f"{train_s if train_s is None else round(train_s, 1)} s, is paid once, not per scan)")
    else:
        result["ptychi"] = ptychi_note
        print(f"Pty-chi not available: network side only ({ptychi_note})")
    if a.json:
        write_json(a.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
