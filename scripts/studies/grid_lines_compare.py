#!/usr/bin/env python
"""Compare generator architectures (and, optionally, Pty-chi) on one grid-lines dataset.

    python scripts/studies/grid_lines_compare.py --preset quick --architectures cnn,fno,hybrid
    python scripts/studies/grid_lines_compare.py --preset quick --iterative lsqml,epie

Simulates (or loads) the dataset once, runs ``grid_lines_torch_runner`` for every
architecture in ``--architectures`` with the same flags (every runner flag is accepted:
the parser *is* the runner's, generated from ``TorchRunnerConfig``), optionally
reconstructs the same test scan with Pty-chi (``--iterative lsqml,epie``, known probe and
positions, scored by the same metrics code on the same region), and writes

* ``comparison.md``   one table: amplitude/phase MAE, PSNR, SSIM, FRC50, phase
  correlation and strength ratio, parameters, train time, inference time, patterns/s;
* ``comparison.json`` the same numbers per method (plus FRC curves and settings);
* ``comparison.png``  ground truth and every reconstruction (amplitude, phase, error
  maps) above the FRC curves of all methods.

All studies share ``--output-dir`` (``runs/<model_id>/...``; the simulated dataset is
cached in ``<output-dir>/datasets`` and simulated once). A finished study whose resolved
config equals the requested one is reused, so an interrupted comparison can simply be
started again. Bad input: one line on stderr, exit code 2, nothing written.
"""
from __future__ import annotations

import io
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parents[1]
for _p in (str(_REPO), str(_HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import grid_lines_torch_runner as runner  # noqa: E402
from ptycho.config.config import ARCHITECTURES  # noqa: E402
from ptycho.evaluation import format_number  # noqa: E402

log = logging.getLogger("grid_lines_compare")

DEFAULT_ARCHITECTURES = ",".join(ARCHITECTURES)
# runner fields that do not change a study's result (ignored when deciding to reuse one)
_VOLATILE = ("overwrite", "resume", "progress_bar", "num_threads", "snapshot_every", "preset",
             "cache_dir")
# (label, key, channel) of the table's metric columns; channel 0 amplitude, 1 phase
_METRIC_COLUMNS = (("amp MAE", "mae", 0), ("phase MAE", "mae", 1),
                   ("amp PSNR", "psnr", 0), ("phase PSNR", "psnr", 1),
                   ("amp SSIM", "ssim", 0), ("phase SSIM", "ssim", 1),
                   ("amp FRC50", "frc50", 0), ("phase FRC50", "frc50", 1))


# ----------------------------------------------------------------------------- config
def build_parser():
    """The runner's parser (one flag per TorchRunnerConfig field) plus the comparison flags."""
    p = runner.build_parser()  # its errors are one-line StudyError (a ValueError)
    p.prog = "grid_lines_compare.py"
    p.description = ("Run several architectures (and optionally Pty-chi) on one grid-lines dataset "
                     "and write comparison.md / .json / .png. Every runner flag applies to all runs.")
    g = p.add_argument_group("comparison")
    g.add_argument("--architectures", default=DEFAULT_ARCHITECTURES,
                   help=f"comma-separated architectures to compare (allowed: {', '.join(ARCHITECTURES)})")
    g.add_argument("--iterative", default="",
                   help="comma-separated Pty-chi engines to add as baselines: lsqml, epie "
                        "(needs the optional extra 'iterative')")
    g.add_argument("--iterative-epochs", type=int, default=100,
                   help="epochs of each Pty-chi engine")
    g.add_argument("--iterative-batch-size", type=int, default=0,
                   help="Pty-chi batch size (0: lsqml 100, epie 16)")
    return p


@dataclass(frozen=True)
class CompareConfig:
    runs: tuple            # TorchRunnerConfig per architecture, same settings otherwise
    iterative: tuple       # Pty-chi engines
    iterative_epochs: int
    iterative_batch_size: int

    @property
    def output_dir(self) -> Path:
        return Path(self.runs[0].output_dir)


def _split(text: str) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


def config_from_argv(argv=None) -> CompareConfig:
    """Parse and validate everything (raises ValueError with one line)."""
    parser = build_parser()
    ns, extra = parser.parse_known_args(argv)
    if extra:
        raise runner._unknown_arguments(extra, parser)
    ns = vars(ns)
    if "architecture" in ns:
        raise ValueError("--architecture selects a single study; use --architectures "
                         f"(comma-separated, allowed: {', '.join(ARCHITECTURES)})")
    archs = _split(ns.pop("architectures"))
    if not archs:
        raise ValueError(f"--architectures is empty (allowed: a comma-separated subset of "
                         f"{', '.join(ARCHITECTURES)})")
    for a in archs:
        if a not in ARCHITECTURES:
            raise ValueError(f"--architectures: {a!r} is not an architecture "
                             f"(allowed: {', '.join(ARCHITECTURES)})")
    if len(set(archs)) != len(archs):
        raise ValueError(f"--architectures lists an architecture twice ({','.join(archs)})")
    from ptycho_torch.iterative import check_engines
    try:
        engines = check_engines(_split(ns.pop("iterative")))
    except ValueError as err:
        raise ValueError(f"--iterative: {err}") from None
    it_epochs, it_batch = ns.pop("iterative_epochs"), ns.pop("iterative_batch_size")
    if it_epochs < 1:
        raise ValueError(f"--iterative-epochs={it_epochs} is out of range (allowed: >= 1)")
    if it_batch < 0:
        raise ValueError(f"--iterative-batch-size={it_batch} is out of range (allowed: >= 0, 0 = default)")
    preset = ns.pop("preset", "none")
    if "output_dir" not in ns:
        ns["output_dir"] = "outputs/grid_lines_compare" + ("" if preset == "none" else f"_{preset}")
    runs = tuple(runner.from_preset(preset, **ns, architecture=a) for a in archs)
    return CompareConfig(runs=runs, iterative=engines, iterative_epochs=int(it_epochs),
                         iterative_batch_size=int(it_batch))


# ------------------------------------------------------------------------------ runs
def _comparable(cfg_dict: dict) -> dict:
    return {k: v for k, v in cfg_dict.items() if k not in _VOLATILE}


def _finished_config(layout) -> dict | None:
    try:
        return json.loads((layout.run_dir / "config.json").read_text())["runner"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def plan_runs(cc: CompareConfig) -> list[tuple]:
    """``[(cfg, 'reuse' | 'run'), ...]``, checked before anything runs (writes nothing).

    A finished study with the same settings is reused; one with other settings is refused
    (ValueError) unless --overwrite. Studies to run get the runner's own read-only checks
    (output directory, interrupted runs, --resume state) now, not after hours of training.
    """
    from ptycho.artifacts import StudyLayout
    plan = []
    for cfg in cc.runs:
        layout = StudyLayout(Path(cfg.output_dir), cfg.model_id)
        if layout.is_finished() and not cfg.overwrite:
            done = _finished_config(layout)
            if done is not None and _comparable(done) == _comparable(asdict(cfg)):
                plan.append((cfg, "reuse"))
                continue
            raise ValueError(f"output_dir={str(cfg.output_dir)!r} already holds a finished study of "
                             f"{cfg.model_id} with other settings; pass --overwrite to replace it or "
                             "choose another --output-dir")
        runner._prepare_output(cfg)
        plan.append((cfg, "run"))
    return plan


def prepare_dataset(cfg) -> tuple[Path, dict]:
    """Simulate (or find in the cache) the dataset all runs share; returns (test path, info)."""
    if cfg.train_npz is not None:
        return Path(cfg.test_npz), {"train_npz": cfg.train_npz, "test_npz": cfg.test_npz,
                                    "simulated": False}
    from ptycho.datagen.grid_lines import simulate_grid_lines
    cache = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.output_dir) / "datasets"
    t0 = time.perf_counter()
    paths = simulate_grid_lines(cfg.grid_lines_spec(), cache)
    log.info("dataset %s in %.1f s: %s", "reused" if paths.cached else "simulated",
             time.perf_counter() - t0, paths.train.parent)
    return paths.test, {"train_npz": str(paths.train), "test_npz": str(paths.test),
                        "simulated": True, "cache_key": cfg.grid_lines_spec().cache_key()}


def _network_row(m: dict) -> dict:
    return {
        "method": m["model_id"], "kind": "network", "architecture": m.get("architecture"),
        "metrics": m["metrics"], "phase_correlation": m.get("phase_correlation"),
        "phase_strength_ratio": m.get("phase_strength_ratio"), "frc": m.get("frc"),
        "n_parameters": m.get("n_parameters"), "epochs": m.get("epochs_completed"),
        "train_time_s": m.get("train_time_s"), "train_patterns_per_s": m.get("train_patterns_per_s"),
        "inference_time_s": m.get("inference_time_s"),
        "patterns_per_s": m.get("inference_patterns_per_s"),
        "stitch_time_s": m.get("stitch_time_s"), "n_test_patterns": m.get("n_test_patterns_scored"),
        "infer_batch_size": m.get("infer_batch_size_used"), "stop_reason": m.get("stop_reason"),
        "region": m.get("region"), "device": m.get("device"),
    }


def run_iterative_row(engine: str, test_path: Path, cfg, cc: CompareConfig, key: dict) -> dict:
    """Pty-chi reconstruction of test object 0; artifacts under runs/ and recons/ptychi_<engine>."""
    from ptycho.artifacts import StudyLayout, write_json_atomic
    from ptycho.io import load_dataset
    from ptycho_torch.iterative import reconstruct_iterative
    from ptycho_torch.study import save_reconstruction, score
    from ptycho_torch.training import resolve_accelerator

    model_id = f"ptychi_{engine}"
    layout = StudyLayout(Path(cfg.output_dir), model_id)
    if layout.is_finished() and not cfg.overwrite:
        try:
            old = json.loads(layout.metrics_path.read_text())
            if old.get("compare_key") == key:
                log.info("%s: reusing %s", model_id, layout.metrics_path)
                return _iterative_row(old)
        except (OSError, ValueError):
            pass
    test = load_dataset(test_path, expect_N=cfg.N, expect_gridsize=cfg.gridsize, require_ground_truth=True)
    device = resolve_accelerator(cfg.device)
    log.info("%s: %d epochs on %s", model_id, cc.iterative_epochs, device)
    rec, res = reconstruct_iterative(engine, test, cfg.test_stride, epochs=cc.iterative_epochs,
                                     batch_size=cc.iterative_batch_size or None, device=device,
                                     seed=cfg.seed)
    result, _ = score(rec)
    save_reconstruction(layout.recon_dir / "recon.npz", rec)
    m = {
        "model_id": model_id, "engine": engine, "metrics": result["metrics"],
        "phase_correlation": result["phase_correlation"],
        "phase_strength_ratio": result["phase_strength_ratio"], "frc": result["frc"],
        "n_parameters": None, "epochs_completed": res.epochs, "batch_size": res.batch_size,
        "train_time_s": None, "inference_time_s": res.time_s,
        "inference_patterns_per_s": res.n_patterns / max(res.time_s, 1e-9),
        "n_test_patterns_scored": res.n_patterns, "region": list(rec.region), "device": res.device,
        "loss": res.loss, "compare_key": key,
        "note": "Pty-chi with the known probe and positions (not optimized); time = build + all epochs",
    }
    write_json_atomic(layout.metrics_path, m)
    return _iterative_row(m)


def _iterative_row(m: dict) -> dict:
    return {
        "method": m["model_id"], "kind": "iterative", "engine": m.get("engine"),
        "metrics": m["metrics"], "phase_correlation": m.get("phase_correlation"),
        "phase_strength_ratio": m.get("phase_strength_ratio"), "frc": m.get("frc"),
        "n_parameters": None, "epochs": m.get("epochs_completed"),
        "batch_size": m.get("batch_size"),
        "train_time_s": None, "train_patterns_per_s": None,
        "inference_time_s": m.get("inference_time_s"), "patterns_per_s": m.get("inference_patterns_per_s"),
        "stitch_time_s": 0.0, "n_test_patterns": m.get("n_test_patterns_scored"),
        "region": m.get("region"), "device": m.get("device"),
    }


def run_comparison(cc: CompareConfig) -> dict:
    """Run (or reuse) every study, then write the comparison files; returns the JSON dict."""
    from ptycho.artifacts import write_json_atomic
    if cc.iterative:
        from ptycho_torch.iterative import import_ptychi
        import_ptychi()  # refuse early (one line naming the extra) when Pty-chi is missing
    plan = plan_runs(cc)
    first = cc.runs[0]
    test_path, data_info = prepare_dataset(first)
    rows = []
    for cfg, action in plan:
        if action == "reuse":
            log.info("%s: reusing the finished study in %s", cfg.model_id, cfg.output_dir)
            metrics = json.loads((Path(cfg.output_dir) / "runs" / cfg.model_id / "metrics.json").read_text())
        else:
            log.info("%s: training", cfg.model_id)
            metrics = runner.run_grid_lines_torch(cfg)
            if not metrics:  # a non-zero DDP rank: the global-zero process writes the comparison
                return {}
        rows.append(_network_row(metrics))
    key_base = {"test_npz": str(test_path), "epochs": cc.iterative_epochs,
                "batch_size": cc.iterative_batch_size, "seed": first.seed,
                "data": data_info.get("cache_key", str(test_path))}
    for engine in cc.iterative:
        rows.append(run_iterative_row(engine, test_path, first, cc, {**key_base, "engine": engine}))
    regions = {tuple(r["region"]) for r in rows if r.get("region") is not None}
    if len(regions) > 1:
        raise ValueError(f"the methods were scored on different regions {sorted(regions)}; "
                         "rerun with --overwrite")
    out = cc.output_dir
    common = {k: v for k, v in asdict(first).items() if k != "architecture"}
    result = {
        "methods": rows,
        "region": list(regions.pop()) if regions else None,
        "dataset": data_info,
        "settings": {"architectures": [c.architecture for c in cc.runs], "runner": common,
                     "iterative": list(cc.iterative), "iterative_epochs": cc.iterative_epochs,
                     "iterative_batch_size": cc.iterative_batch_size},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (out / "comparison.md").parent.mkdir(parents=True, exist_ok=True)
    save_comparison_figure(out / "comparison.png", rows, out)
    _write_text_atomic(out / "comparison.md", markdown_report(result))
    write_json_atomic(out / "comparison.json", result)
    return result


# --------------------------------------------------------------------------- outputs
def _value(metric) -> float:
    """JSON-cleaned metric values may be the strings 'inf' / 'nan'."""
    try:
        return float(metric)
    except (TypeError, ValueError):
        return float("nan")


def markdown_table(rows: list[dict]) -> str:
    head = (["method"] + [c[0] for c in _METRIC_COLUMNS]
            + ["phase corr", "phase strength", "parameters", "train s", "inference s", "patterns/s"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["method"]]
        cells += [format_number(_value(r["metrics"][key][ch])) for _, key, ch in _METRIC_COLUMNS]
        cells += [format_number(r.get("phase_correlation"), 3), format_number(r.get("phase_strength_ratio"), 3),
                  "-" if r.get("n_parameters") is None else f"{int(r['n_parameters']):,}",
                  format_number(r.get("train_time_s"), 3), format_number(r.get("inference_time_s"), 3),
                  format_number(r.get("patterns_per_s"), 4)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(result: dict) -> str:
    s = result["settings"]
    r = s["runner"]
    data = result["dataset"]
    parts = [
        "# Grid-lines comparison",
        "",
        f"Test object 0, region (row0, col0, height, width) = {result['region']}; "
        f"N={r['N']}, gridsize={r['gridsize']}, nphotons={r['nphotons']:g}, "
        f"preset={r['preset']}, epochs<={r['epochs']}, max_train_minutes={r['max_train_minutes']:g}, "
        f"batch_size={r['batch_size']}, learning_rate={r['learning_rate']:g}, "
        f"fno_width={r['fno_width']}, fno_modes={r['fno_modes']}, device={r['device']}.",
        f"Dataset: {data.get('test_npz')}.",
        "",
        markdown_table(result["methods"]),
        "",
        "Metrics: 2 px border trimmed; amplitude scaled by mean(gt)/mean(pred); a fitted phase "
        "plane removed from each phase. PSNR uses the ground truth's data range. FRC50 in "
        "cycles/pixel (0.5 = Nyquist). Phase SSIM is lenient on this object (a flat phase scores "
        "~0.65-0.85): judge phase by PSNR, correlation and strength ratio (std(pred)/std(gt), "
        "1 = right contrast). 'train s' and 'inference s' are wall times; for Pty-chi rows the "
        "inference time is the whole iterative reconstruction (known probe and positions, "
        f"{s['iterative_epochs']} epochs).",
        "",
    ]
    return "\n".join(parts)


def _write_text_atomic(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def _aligned_images(out: Path, method: str):
    import numpy as np

    from ptycho.evaluation import align_for_metrics
    with np.load(out / "recons" / method / "recon.npz") as z:
        return align_for_metrics(z["reconstruction"], z["ground_truth"])


def save_comparison_figure(path: Path, rows: list[dict], out: Path) -> Path:
    """One PNG: the panel figure (truth + every method, errors) above the FRC curves."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt
    import numpy as np

    from ptycho.plotting import comparison_panels, frc_figure
    panels, gt = {}, None
    for r in rows:
        amp, amp_gt, ph, ph_gt = _aligned_images(out, r["method"])
        panels[r["method"]] = (amp, ph)
        if gt is None:
            gt = (amp_gt, ph_gt)
    curves = {r["method"]: (r["frc"]["freqs"], r["frc"]["amplitude"], r["frc"]["phase"])
              for r in rows if r.get("frc")}
    images = []
    for fig in (comparison_panels(gt[0], gt[1], panels, "test object 0: every method"),
                frc_figure(curves, "FRC vs ground truth")):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", facecolor="white")
        plt.close(fig)
        buf.seek(0)
        images.append(mpimg.imread(buf, format="png")[..., :3])
    width = max(im.shape[1] for im in images)
    padded = [np.pad(im, ((0, 0), (0, width - im.shape[1]), (0, 0)), constant_values=1.0)
              for im in images]
    canvas = np.concatenate(padded, axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    plt.imsave(tmp, canvas)
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cc = config_from_argv(argv)
        result = run_comparison(cc)
    except (ValueError, FileNotFoundError) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"error: {runner._flag_hint(msg)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to continue (finished studies "
              "are reused; add --resume to continue an interrupted training)", file=sys.stderr)
        return 130
    if result:
        print(markdown_table(result["methods"]))
        print(f"comparison: {(cc.output_dir / 'comparison.md').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
