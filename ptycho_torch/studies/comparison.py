"""Several architectures (and Pty-chi baselines) on one dataset: the ``ptycho-compare`` CLI.

:func:`main` is the entry point (``scripts/studies/grid_lines_compare.py`` only calls it).
Every study flag (generated from :class:`~ptycho.config.config.StudyConfig`) applies to
every architecture; ``--architectures``, ``--iterative``, ``--iterative-epochs`` and
``--iterative-batch-size`` choose the methods. The dataset is simulated once (cached in
``<output-dir>/datasets``); every method is scored by the same code on the same region of
test object 0, and one :class:`~ptycho.study_metrics.StudyMetrics` record per method is
written as ``runs/<model_id>/metrics.json`` (network and iterative rows alike). Then

* ``comparison.md``   the table of :func:`ptycho.study_metrics.metrics_table` and the settings;
* ``comparison.json`` ``methods`` (the metrics records), the region, the dataset, the settings;
* ``comparison.png``  ground truth and every reconstruction (with error maps) above the FRC
  curves of every method.

Reuse: a finished study whose config equals the requested one except
:data:`~ptycho.config.config.NO_EFFECT_ON_RESULT` is reused (not retrained), likewise a
Pty-chi row whose ``compare_key`` (data, engine, epochs, batch size, seed) matches; a finished
row with other settings is refused unless ``--overwrite``. So an interrupted comparison is
continued by running the same command again (``--resume`` continues a study stopped
mid-training). Every refusal happens before anything runs: one line, exit code 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptycho.artifacts import StudyLayout, write_json_atomic, write_text_atomic
from ptycho.config.cli import build_parser as build_config_parser
from ptycho.config.cli import config_from_values, parse_known
from ptycho.config.config import (
    ARCHITECTURES,
    NO_EFFECT_ON_RESULT,
    SimulationConfig,
    StudyConfig,
    field_names,
)
from ptycho.config.validation import StudyError
from ptycho.datagen.grid_lines import simulate_grid_lines, spec_for
from ptycho.evaluation import align_for_metrics
from ptycho.formats.study_input import read_dataset
from ptycho.plotting import comparison_panels, frc_figure, save_stacked_figures
from ptycho.study_metrics import StudyMetrics, metrics_table
from ptycho_torch.cli import configure_logging, refuse
from ptycho_torch.data_residual import data_residual
from ptycho_torch.engine.device import apply_num_threads, resolve_device
from ptycho_torch.engine.inference import predict_patches
from ptycho_torch.engine.outputs import prepare_output
from ptycho_torch.ptychi import IterativeUnavailableError, check_engines, import_ptychi
from ptycho_torch.ptychi.baseline import iterative_reconstruction, reconstruct_iterative
from ptycho_torch.ptychi.engine import run_ptychi_chunks
from ptycho_torch.ptychi.scan import scan_for_ptychi
from ptycho_torch.ptychi.start import start_from_patches
from ptycho_torch.reconstruct import load_model
from ptycho_torch.reconstruction import save_reconstruction, score, stitch_options
from ptycho_torch.study import read_probe_file, run_study

log = logging.getLogger(__name__)

ITERATIVE_NOTE = ("Pty-chi with the known probe and positions (not optimized); "
                  "time = task build + all epochs")
METRICS_NOTE = (
    "Metrics: 2 px border trimmed; amplitude scaled by mean(gt)/mean(pred); a fitted phase "
    "plane removed from each phase. PSNR uses the ground truth's data range. FRC50 in "
    "cycles/pixel (0.5 = Nyquist). Phase SSIM is lenient on this object (a flat phase scores "
    "~0.65-0.85): judge phase by PSNR, correlation and strength ratio (std(pred)/std(gt), "
    "1 = right contrast). 'data residual' is the ground-truth-free amplitude MAE of the "
    "re-simulated patterns. 'train s' and 'inference s' are wall times; for Pty-chi rows the "
    "inference time is the whole iterative reconstruction (known probe and positions); for "
    "'<network>+<engine>' rows (the engine started at that network's reconstruction) it is the "
    "engine's time, and their parameters and train s are the network's.")


# ------------------------------------------------------------------------ CLI pieces
def split_list(text) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


def parse_architectures(text: str) -> tuple[str, ...]:
    archs = split_list(text)
    if not archs:
        raise StudyError(f"--architectures is empty (allowed: a comma-separated subset of "
                         f"{', '.join(ARCHITECTURES)})")
    for a in archs:
        if a not in ARCHITECTURES:
            raise StudyError(f"--architectures: {a!r} is not an architecture "
                             f"(allowed: {', '.join(ARCHITECTURES)})")
    if len(set(archs)) != len(archs):
        raise StudyError(f"--architectures lists an architecture twice ({','.join(archs)})")
    return tuple(archs)


def parse_engines(text: str, flag: str = "--iterative") -> tuple[str, ...]:
    """Pty-chi engines of ``--iterative`` or ``--refine`` ('' or 'none': no such rows)."""
    names = [n for n in split_list(text) if n.lower() != "none"]
    try:
        return check_engines(names)
    except ValueError as err:
        raise StudyError(f"{flag}: {err}") from None


def add_method_flags(parser: argparse.ArgumentParser, architectures: str, iterative: str,
                     title: str = "methods") -> None:
    """``--architectures``, ``--iterative``, ``--iterative-epochs``, ``--iterative-batch-size``."""
    g = parser.add_argument_group(title)
    g.add_argument("--architectures", default=architectures,
                   help=f"comma-separated architectures (allowed: {', '.join(ARCHITECTURES)})")
    g.add_argument("--iterative", default=iterative,
                   help="comma-separated Pty-chi engines to add as baselines: lsqml (Gaussian "
                        "noise model), lsqml-poisson (Poisson likelihood), epie "
                        "('' or none: no baseline; needs the optional extra 'iterative')")
    g.add_argument("--iterative-epochs", type=int, default=100,
                   help="epochs of each Pty-chi engine")
    g.add_argument("--iterative-batch-size", type=int, default=0,
                   help="Pty-chi batch size (0: lsqml 100, epie 16)")
    g.add_argument("--refine", default="",
                   help="comma-separated Pty-chi engines to start at each network's "
                        "reconstruction (rows '<network>+<engine>'; '' or none: no such rows)")
    g.add_argument("--refine-epochs", type=int, default=20,
                   help="epochs of each --refine engine")


@dataclass(frozen=True)
class Methods:
    architectures: tuple[str, ...]
    iterative: tuple[str, ...]
    iterative_epochs: int
    iterative_batch_size: int
    refine: tuple[str, ...] = ()
    refine_epochs: int = 20


def pop_methods(values: dict) -> Methods:
    """Take the method flags out of parsed ``values`` and validate them."""
    if "architecture" in values:  # only reachable through a parser that kept the flag
        raise StudyError("--architecture selects a single study; use --architectures")
    archs = parse_architectures(values.pop("architectures"))
    engines = parse_engines(values.pop("iterative"))
    epochs, batch = values.pop("iterative_epochs"), values.pop("iterative_batch_size")
    refine = parse_engines(values.pop("refine"), "--refine")
    refine_epochs = values.pop("refine_epochs")
    if refine_epochs < 1:
        raise StudyError(f"--refine-epochs={refine_epochs} is out of range (allowed: >= 1)")
    if epochs < 1:
        raise StudyError(f"--iterative-epochs={epochs} is out of range (allowed: >= 1)")
    if batch < 0:
        raise StudyError(f"--iterative-batch-size={batch} is out of range (allowed: >= 0, "
                         "0 = the engine's default)")
    return Methods(archs, engines, int(epochs), int(batch), refine, int(refine_epochs))


def default_output_dir(values: dict, stem: str) -> None:
    """``outputs/<stem>[_<preset>]`` unless ``--output-dir`` was given."""
    if "output_dir" not in values:
        preset = values.get("preset", "none")
        values["output_dir"] = f"outputs/{stem}" + ("" if preset in (None, "none") else f"_{preset}")


# ------------------------------------------------------------------------- config
@dataclass(frozen=True)
class CompareConfig:
    """One study config per architecture (otherwise identical) and the Pty-chi rows."""

    studies: tuple[StudyConfig, ...]
    iterative: tuple[str, ...] = ()
    iterative_epochs: int = 100
    iterative_batch_size: int = 0
    refine: tuple[str, ...] = ()
    refine_epochs: int = 20

    @property
    def base(self) -> StudyConfig:
        return self.studies[0]

    @property
    def output_dir(self) -> Path:
        return Path(self.base.run.output_dir)


def build_parser(prog: str = "grid_lines_compare.py") -> argparse.ArgumentParser:
    p = build_config_parser(prog, "Run several architectures (and optionally Pty-chi) on one "
                            "dataset and write comparison.md / .json / .png. Every study flag "
                            "applies to every architecture.", exclude=("architecture",))
    add_method_flags(p, ",".join(ARCHITECTURES), "", title="comparison")
    return p


def config_from_argv(argv=None) -> CompareConfig:
    """Parse and validate everything (raises a one-line ValueError)."""
    parser = build_parser()
    values = parse_known(parser, argv)
    methods = pop_methods(values)
    default_output_dir(values, "grid_lines_compare")
    base = config_from_values(values)
    studies = tuple(base.replace(architecture=a) for a in methods.architectures)
    return CompareConfig(studies=studies, iterative=methods.iterative,
                         iterative_epochs=methods.iterative_epochs,
                         iterative_batch_size=methods.iterative_batch_size,
                         refine=methods.refine, refine_epochs=methods.refine_epochs)


# ------------------------------------------------------------------- reuse / planning
def comparable(cfg: StudyConfig) -> dict:
    """The settings that change a study's numbers."""
    return {k: v for k, v in cfg.flat().items() if k not in NO_EFFECT_ON_RESULT}


def finished_config(layout: StudyLayout) -> StudyConfig | None:
    """The config a finished study ran with (its ``config.json``), or None."""
    try:
        return StudyConfig.from_dict(json.loads((layout.run_dir / "config.json").read_text())["study"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def plan_study(cfg: StudyConfig) -> str:
    """``'reuse'`` a finished study with the same settings, else ``'run'`` after the
    runner's read-only checks (output directory, interrupted run, --resume state).
    A finished study with other settings is refused unless --overwrite. Writes nothing."""
    layout = StudyLayout(Path(cfg.run.output_dir), cfg.model_id)
    if layout.is_finished() and not cfg.run.overwrite:
        done = finished_config(layout)
        if done is not None and comparable(done) == comparable(cfg):
            return "reuse"
        now, old = comparable(cfg), comparable(done) if done is not None else {}
        diff = [k for k in now if old.get(k) != now[k]]
        what = (f" ({diff[0]}={now[diff[0]]!r}, the finished study used {old.get(diff[0])!r})"
                if diff and done is not None else "")
        raise StudyError(f"output_dir={str(cfg.run.output_dir)!r} already holds a finished "
                         f"study of {cfg.model_id} with other settings{what}; pass --overwrite "
                         "to replace it or choose another --output-dir")
    prepare_output(cfg)
    return "run"


def run_or_reuse(cfg: StudyConfig, action: str) -> StudyMetrics | None:
    """The study's metrics record: read (reuse) or trained now (None on extra DDP ranks)."""
    layout = StudyLayout(Path(cfg.run.output_dir), cfg.model_id)
    if action == "reuse":
        log.info("%s: reusing the finished study in %s", cfg.model_id, layout.run_dir)
        return StudyMetrics.from_json(json.loads(layout.metrics_path.read_text()))
    log.info("%s: training (%s)", cfg.model_id, cfg.run.output_dir)
    result = run_study(cfg)
    return None if result is None else result.metrics


# ---------------------------------------------------------------------------- data
def dataset_paths(cfg: StudyConfig) -> tuple[Path, dict]:
    """The test scan's path (simulated into the cache when needed) and a description."""
    if not cfg.simulated:
        test = Path(cfg.run.test_npz or cfg.run.train_npz)
        return test, {"train_npz": cfg.run.train_npz, "test_npz": str(test), "simulated": False}
    cache = Path(cfg.run.datasets_dir())
    probe = read_probe_file(cfg.run.probe_npz, cfg.model.N) if cfg.run.probe_npz else None
    paths = simulate_grid_lines(spec_for(cfg), cache, probe=probe)
    return paths.test, {"train_npz": str(paths.train), "test_npz": str(paths.test),
                        "simulated": True, "cache_key": spec_for(cfg).cache_key()}


def load_test_data(cfg: StudyConfig):
    """``(test PtychoDataset, info)``: only the scored scan (the training scan stays on disk)."""
    path, info = dataset_paths(cfg)
    try:
        test = read_dataset(path, N=cfg.model.N, gridsize=cfg.model.gridsize,
                            unit=cfg.run.data_unit,
                            cxi_translation_sign=cfg.run.cxi_translation_sign)
    except ValueError as err:
        hint = "" if cfg.simulated else " [flag --test-npz]"
        raise StudyError(f"{str(err).splitlines()[0]}{hint}") from None
    return test, info


_DATA_FIELDS = field_names(SimulationConfig) + ("N", "gridsize", "train_npz", "test_npz",
                                                 "probe_npz", "data_unit")


def data_key(cfg: StudyConfig) -> dict:
    """Every setting that determines the scored test scan."""
    flat = cfg.flat()
    return {k: flat[k] for k in _DATA_FIELDS}


def iterative_key(cfg: StudyConfig, engine: str, epochs: int, batch_size: int, **extra) -> dict:
    """What an iterative row's numbers depend on (its ``compare_key``)."""
    return {"engine": engine, "epochs": int(epochs), "batch_size": int(batch_size),
            "seed": cfg.training.seed, "data": data_key(cfg), **extra}


def reusable_row(layout: StudyLayout, key: dict, overwrite: bool,
                 refuse: bool = True) -> StudyMetrics | None:
    """The finished row of ``layout`` when its ``compare_key`` equals ``key``; None when
    there is none (or with --overwrite); when it has other settings, StudyError (or None
    when not ``refuse``: a derived row that is simply recomputed)."""
    if overwrite or not layout.is_finished():
        return None
    try:
        old = StudyMetrics.from_json(json.loads(layout.metrics_path.read_text()))
    except (OSError, ValueError, TypeError):
        return None  # a broken record is simply recomputed
    if json.loads(json.dumps(old.compare_key)) == json.loads(json.dumps(key)):
        return old
    if not refuse:
        return None
    raise StudyError(f"output_dir={str(layout.output_dir)!r} already holds a finished "
                     f"{layout.model_id} row with other settings ({layout.metrics_path}); pass "
                     "--overwrite to replace it or choose another --output-dir")


def iterative_row(model_id: str, engine: str, rec, test, *, epochs: int, device: str,
                  key: dict, note: str = ITERATIVE_NOTE, loss=None) -> StudyMetrics:
    """The metrics record of an iterative reconstruction (scored when there is ground truth;
    the data residual always)."""
    sub = test.select(test.object_selection(0))
    residual = data_residual(rec.patches, sub.diffraction, test.probe,
                             photon_scale=test.photon_scale, bad_pixels=test.bad_pixels)
    m = StudyMetrics(model_id=model_id, kind="iterative", ground_truth=rec.ground_truth is not None,
                     data_residual=residual, stitch=rec.stitch, region=list(rec.region),
                     n_test_patterns_scored=rec.n_patterns, inference_time_s=rec.inference_time_s,
                     inference_patterns_per_s=rec.n_patterns / max(rec.inference_time_s, 1e-9),
                     infer_batch_size_used=rec.infer_batch_size, stitch_time_s=0.0,
                     device=str(device), engine=engine, batch_size=rec.infer_batch_size,
                     epochs_completed=int(epochs), loss=list(loss or []), compare_key=key,
                     note=note, total_time_s=rec.inference_time_s)
    if rec.ground_truth is not None:
        result, _ = score(rec)
        m.set_scores(result)
    return m


def save_row(layout: StudyLayout, m: StudyMetrics, rec) -> StudyMetrics:
    """Write a computed row: ``recons/<id>/recon.npz``, then ``runs/<id>/metrics.json`` last."""
    save_reconstruction(layout.recon_dir / "recon.npz", rec)
    write_json_atomic(layout.metrics_path, m.to_json())
    return m


def run_iterative_row(engine: str, test, cfg: StudyConfig, epochs: int, batch_size: int,
                      key: dict) -> StudyMetrics:
    """Pty-chi reconstruction of test object 0 (``runs/ptychi_<engine>``), or the finished
    row with the same ``key``."""
    layout = StudyLayout(Path(cfg.run.output_dir), f"ptychi_{engine}")
    old = reusable_row(layout, key, cfg.run.overwrite)
    if old is not None:
        log.info("%s: reusing %s", layout.model_id, layout.metrics_path)
        return old
    device = resolve_device(cfg.training.device)
    log.info("%s: %d epochs on %s", layout.model_id, epochs, device)
    rec, res = reconstruct_iterative(engine, test, epochs=epochs, batch_size=batch_size or None,
                                     device=device, seed=cfg.training.seed,
                                     inference=cfg.inference)
    m = iterative_row(layout.model_id, engine, rec, test, epochs=res.epochs, device=res.device,
                      key=key, loss=res.loss)
    return save_row(layout, m, rec)


def row_stamp(layout: StudyLayout) -> int:
    """When a finished row's metrics.json was written: rows derived from it (refined,
    best-validation, transfer) are recomputed when it changes."""
    return layout.metrics_path.stat().st_mtime_ns


def refined_key(cfg: StudyConfig, engine: str, epochs: int, batch_size: int,
                source: StudyLayout, **extra) -> dict:
    """A refined row's ``compare_key``: the engine's settings and the network row it starts
    from (its id and :func:`row_stamp`: a retrained network is new)."""
    return iterative_key(cfg, engine, epochs, batch_size, init=source.model_id,
                         init_stamp=row_stamp(source), **extra)


def network_patches(checkpoint: Path, test, cfg: StudyConfig, device: str):
    """The trained network's predicted patches of test object 0 and their centres."""
    model = load_model(str(checkpoint), device)
    sub = test.select(test.object_selection(0))
    return (predict_patches(model, sub, cfg.inference.infer_batch_size), sub.centres,
            sub.pattern_ids())


def refine_states(engine: str, patches, centres, ids, scan, cfg: StudyConfig, *, epochs: int,
                  every: int, batch_size: int, device: str):
    """Pty-chi ``engine`` on ``scan`` started at the network's patches at its positions
    (:func:`ptycho_torch.ptychi.start.start_from_patches`, stitched with the study's options),
    run in chunks of ``every`` epochs: ``(IterativeResult, states, start object)``. ``ids``:
    the patches' pattern ids (``PtychoDataset.pattern_ids``)."""
    init = start_from_patches(patches, centres, scan, stitch_options(cfg.inference, scan.N),
                              pattern_ids=ids)
    res, states = run_ptychi_chunks(engine, scan, epochs=epochs, every=every,
                                    batch_size=batch_size or None, device=device,
                                    seed=cfg.training.seed, initial_object=init)
    return res, states, init


def refined_row(model_id: str, engine: str, rec, test, source: StudyMetrics, *, epochs: int,
                device: str, key: dict, loss, what: str) -> StudyMetrics:
    """The record of a refined reconstruction: scored like an iterative row; its total time
    adds the network's inference and stitching (the training is paid once per family)."""
    m = iterative_row(model_id, engine, rec, test, epochs=epochs, device=device, key=key,
                      loss=loss, note=f"Pty-chi {engine} started at {source.model_id}'s "
                                      f"reconstruction, known probe and positions; {what}")
    m.kind, m.initialized_from = "refined", source.model_id
    m.architecture, m.n_parameters = source.architecture, source.n_parameters
    m.train_time_s = source.train_time_s
    m.total_time_s = (rec.inference_time_s + (source.inference_time_s or 0.0)
                      + (source.stitch_time_s or 0.0))
    return m


def run_refined_row(source: StudyMetrics, engine: str, test, cfg: StudyConfig, epochs: int,
                    batch_size: int) -> StudyMetrics:
    """``runs/<network>+<engine>``: ``engine`` for ``epochs`` from the network's object,
    or the finished row with the same settings and the same network."""
    out = Path(cfg.run.output_dir)
    src = StudyLayout(out, source.model_id)
    layout = StudyLayout(out, f"{source.model_id}+{engine}")
    key = refined_key(cfg, engine, epochs, batch_size, src)
    old = reusable_row(layout, key, cfg.run.overwrite, refuse=False)
    if old is not None:
        log.info("%s: reusing %s", layout.model_id, layout.metrics_path)
        return old
    device = resolve_device(cfg.training.device)
    log.info("%s: %d epochs on %s from %s's reconstruction", layout.model_id, epochs, device,
             source.model_id)
    patches, centres, ids = network_patches(src.run_dir / "model.ckpt", test, cfg, device)
    res, _, _ = refine_states(engine, patches, centres, ids, scan_for_ptychi(test, 0), cfg,
                              epochs=epochs, every=epochs, batch_size=batch_size, device=device)
    rec = iterative_reconstruction(test, res.obj, time_s=res.time_s, n_patterns=res.n_patterns,
                                   batch_size=res.batch_size, inference=cfg.inference)
    m = refined_row(layout.model_id, engine, rec, test, source, epochs=res.epochs,
                    device=res.device, key=key, loss=res.loss, what=f"{epochs} epochs")
    return save_row(layout, m, rec)


# -------------------------------------------------------------------------- outputs
def common_region(rows: list[StudyMetrics]) -> list | None:
    """The one region every row was scored on (``ptycho_torch.reconstruction.scored_region``).

    Rows of one comparison get it from one definition, so a difference means a row was
    written by an older version of this program or with other stitch settings: the
    refusal names the rows of each region."""
    by_region: dict[tuple, list[str]] = {}
    for r in rows:
        if r.region is not None:
            by_region.setdefault(tuple(r.region), []).append(r.model_id)
    if len(by_region) > 1:
        parts = "; ".join(f"{', '.join(ids)}: {list(reg)}" for reg, ids in sorted(by_region.items()))
        raise StudyError(f"the methods were scored on different regions (row0, col0, height, "
                         f"width) ({parts}); rerun the rows written by an older version with "
                         "--overwrite")
    return list(next(iter(by_region))) if by_region else None


def settings_line(cfg: StudyConfig, skip: tuple = ()) -> str:
    """The settings a reader of a table needs, ``name=value`` (minus ``skip``)."""
    m, t, s = cfg.model, cfg.training, cfg.simulation
    items = {"N": m.N, "gridsize": m.gridsize, "nphotons": f"{s.nphotons:g}",
             "preset": cfg.run.preset, "epochs<": t.epochs,
             "max_train_minutes": f"{t.max_train_minutes:g}", "batch_size": t.batch_size,
             "learning_rate": f"{t.learning_rate:g}", "loss": t.loss, "fno_width": m.fno_width,
             "fno_modes": m.fno_modes, "device": t.device}
    return ", ".join(f"{k}={v}" for k, v in items.items() if k not in skip)


def markdown_report(cc: CompareConfig, rows: list[StudyMetrics], region, data: dict) -> str:
    return "\n".join([
        "# Grid-lines comparison", "",
        f"Test object 0, region (row0, col0, height, width) = {region}; {settings_line(cc.base)}; "
        f"Pty-chi: {', '.join(cc.iterative) or 'none'} ({cc.iterative_epochs} epochs)"
        + (f"; refined (Pty-chi {', '.join(cc.refine)} started at each network's "
           f"reconstruction): {cc.refine_epochs} epochs." if cc.refine else "."),
        f"Dataset: {data.get('test_npz')}.", "",
        metrics_table(rows), "", METRICS_NOTE, ""])


def save_comparison_figure(path: Path, items: list[tuple[str, Path, dict | None]],
                           title: str = "test object 0: every method") -> Path | None:
    """``items``: (label, recon.npz, FRC curves) per method. The panel figure (truth, every
    method, error maps) above the FRC curves; None (nothing written) without ground truth."""

    panels, gt = {}, None
    for label, npz, _ in items:
        with np.load(npz) as z:
            if "ground_truth" not in z.files:
                return None
            amp, amp_gt, ph, ph_gt = align_for_metrics(z["reconstruction"], z["ground_truth"])
        panels[label] = (amp, ph)
        gt = gt or (amp_gt, ph_gt)
    if gt is None:
        return None
    curves = {label: (f["freqs"], f["amplitude"], f["phase"]) for label, _, f in items if f}
    return save_stacked_figures(path, [comparison_panels(gt[0], gt[1], panels, title),
                                       frc_figure(curves, "FRC vs ground truth")])


def plan_comparison(cc: CompareConfig) -> list[tuple[StudyConfig, str]]:
    """Every read-only check before anything runs: Pty-chi importable, each study's
    reuse / run decision, each Pty-chi row's settings."""
    if cc.iterative or cc.refine:
        import_ptychi()  # one line naming the extra when Pty-chi is missing
    plan = [(cfg, plan_study(cfg)) for cfg in cc.studies]
    for engine in cc.iterative:
        layout = StudyLayout(cc.output_dir, f"ptychi_{engine}")
        reusable_row(layout, iterative_key(cc.base, engine, cc.iterative_epochs,
                                           cc.iterative_batch_size), cc.base.run.overwrite)
    return plan


def run_comparison(cc: CompareConfig, plan=None) -> dict:
    """Run (or reuse) every method, then write the comparison files; returns the JSON dict
    (``{}`` on the extra ranks of a DDP launch)."""
    plan = plan_comparison(cc) if plan is None else plan
    apply_num_threads(cc.base.run.num_threads)
    rows: list[StudyMetrics] = []
    for cfg, action in plan:
        m = run_or_reuse(cfg, action)
        if m is None:  # an extra DDP rank: the global-zero process writes the comparison
            return {}
        rows.append(m)
    base = cc.base
    if cc.iterative or cc.refine:
        test, data = load_test_data(base)
        networks = list(rows)
        for engine in cc.iterative:
            key = iterative_key(base, engine, cc.iterative_epochs, cc.iterative_batch_size)
            rows.append(run_iterative_row(engine, test, base, cc.iterative_epochs,
                                          cc.iterative_batch_size, key))
        for source in networks:
            for engine in cc.refine:
                rows.append(run_refined_row(source, engine, test, base, cc.refine_epochs,
                                            cc.iterative_batch_size))
    else:
        _, data = dataset_paths(base)
    region = common_region(rows)
    out = cc.output_dir
    study = base.to_dict()
    study["model"].pop("architecture")
    result = {
        "methods": [r.to_json() for r in rows],
        "region": region,
        "dataset": data,
        "settings": {"architectures": [c.model.architecture for c in cc.studies],
                     "study": study, "iterative": list(cc.iterative),
                     "iterative_epochs": cc.iterative_epochs,
                     "iterative_batch_size": cc.iterative_batch_size,
                     "refine": list(cc.refine), "refine_epochs": cc.refine_epochs},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    items = [(r.model_id, StudyLayout(out, r.model_id).recon_dir / "recon.npz", r.frc)
             for r in rows]
    if save_comparison_figure(out / "comparison.png", items) is None:
        log.info("no ground truth: comparison.png not written")
    write_text_atomic(out / "comparison.md", markdown_report(cc, rows, region, data))
    write_json_atomic(out / "comparison.json", result)
    return result


# ------------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    """``ptycho-compare``. Exit codes: 0 done; 2 refused input (one ``error:`` line on
    stderr, nothing written); 130 interrupted (run the same command again)."""
    configure_logging()
    try:
        cc = config_from_argv(argv)
        plan = plan_comparison(cc)
    except ValueError as err:  # StudyError, ConfigError, IterativeUnavailableError
        return refuse(err)
    try:
        result = run_comparison(cc, plan)
    except (StudyError, IterativeUnavailableError) as err:
        return refuse(err)
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to continue (finished studies "
              "are reused; add --resume to continue an interrupted training)", file=sys.stderr)
        return 130
    if result:
        print(metrics_table([StudyMetrics.from_json(m) for m in result["methods"]]))
        print(f"comparison: {(cc.output_dir / 'comparison.md').resolve()}")
    return 0
