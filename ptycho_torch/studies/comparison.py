"""Several architectures (and Pty-chi baselines) on one dataset: the ``ptycho-compare`` CLI.

The command is :func:`ptycho_torch.studies.commands.compare_main` (its flags checked without
torch, :mod:`ptycho_torch.studies.options.comparison`), then :func:`run` here; :func:`main`
is the same in one process.
Every study flag (generated from :class:`~ptycho.config.study_config.StudyConfig`) applies to
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
:data:`~ptycho.config.study_config.NO_EFFECT_ON_RESULT` is reused (not retrained), likewise a
Pty-chi row whose ``compare_key`` (data, engine, epochs, batch size, seed) matches; a finished
row with other settings is refused unless ``--overwrite``. So an interrupted comparison is
continued by running the same command again (``--resume`` continues a study stopped
mid-training). Every refusal happens before anything runs: one line, exit code 2.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ptycho.artifacts import StudyLayout, write_json_atomic, write_text_atomic
from ptycho.config.study_config import StudyConfig
from ptycho.config.validation import StudyError
from ptycho.evaluation import align_for_metrics
from ptycho.plotting import comparison_panels, frc_figure, save_stacked_figures
from ptycho.study_metrics import StudyMetrics, metrics_table
from ptycho_torch.ptychi import IterativeUnavailableError, import_ptychi
from ptycho_torch.studies.common import iterative_key, plan_study, run_or_reuse, settings_line
from ptycho_torch.studies.options.comparison import (  # noqa: F401  (re-exported: imported from here)
    CompareConfig,
    CompareOptions,
    build_parser,
    compare_config,
    config_from_argv,
    sweep_from_argv,
)
from ptycho_torch.studies.rows import finished_row, metrics_row
from ptycho_torch.studies.seeds import methods_table, summarise_methods
from ptycho_torch.studies.sweep import SeedSweep, plan_each, sweep_main
from ptycho_torch.studies.methods import (
    parse_reuse,
    run_iterative_row,
    run_refined_row,
    run_reused_row,
)
from ptycho.inputs import load_test_data, study_paths
from ptycho_torch.engine.threads import apply_num_threads

log = logging.getLogger(__name__)


METRICS_NOTE = (
    "Metrics: 2 px border trimmed; amplitude scaled by mean(gt)/mean(pred); the global phase "
    "and the phase ramp of pred * conj(gt) removed (amplitude-weighted), and the sub-pixel "
    "translation too for rows whose positions were corrected. PSNR uses the ground truth's "
    "data range. FRC50 in cycles/pixel (0.5 = Nyquist; '>= 0.5': never fell below). Phase "
    "SSIM is lenient on this object (a flat phase scores ~0.65-0.85): judge phase by PSNR, "
    "correlation and strength ratio (std(pred)/std(gt), 1 = right contrast). 'data residual' "
    "is the ground-truth-free amplitude MAE of the re-simulated patterns. 'train s' and "
    "'inference s' are wall times; for Pty-chi rows the inference time is the whole iterative "
    "reconstruction (known probe and positions); for '<network>+<engine>' rows (the engine "
    "started at that network's reconstruction) it is the engine's time, and their parameters "
    "and train s are the network's.")


def common_region(rows: list[StudyMetrics]) -> list | None:
    """The one region every row was scored on (``ptycho.reconstruction.scored_region``).

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


def markdown_report(cc: CompareConfig, rows: list[StudyMetrics], region, data: dict) -> str:
    m = cc.methods
    return "\n".join([
        "# Grid-lines comparison", "",
        f"Test object 0, region (row0, col0, height, width) = {region}; {settings_line(cc.base)}; "
        f"Pty-chi: {', '.join(m.iterative) or 'none'} ({m.iterative_epochs} epochs)"
        + (f"; refined (Pty-chi {', '.join(m.refine)} started at each network's "
           f"reconstruction): {m.refine_epochs} epochs" if m.refine else "")
        + (f"; reused with no training (rows '<run>@reused'): "
           f"{', '.join(str(p) for p in cc.reuse)}." if cc.reuse else "."),
        f"Dataset: {data.get('test_npz')}.", "",
        metrics_table(rows), "", METRICS_NOTE, ""])


def save_comparison_figure(path: Path, items: list[tuple[str, Path, dict | None, bool]],
                           title: str = "test object 0: every method") -> Path | None:
    """``items``: (label, recon.npz, FRC curves, registered as scored) per method. The panel
    figure (truth, every method, error maps) above the FRC curves; None (nothing written)
    without ground truth."""

    panels, gt = {}, None
    for label, npz, _, register in items:
        with np.load(npz) as z:
            if "ground_truth" not in z.files:
                return None
            amp, amp_gt, ph, ph_gt = align_for_metrics(z["reconstruction"], z["ground_truth"],
                                                       register=register)
        panels[label] = (amp, ph)
        gt = gt or (amp_gt, ph_gt)
    if gt is None:
        return None
    curves = {label: (f["freqs"], f["amplitude"], f["phase"]) for label, _, f, _ in items if f}
    return save_stacked_figures(path, [comparison_panels(gt[0], gt[1], panels, title),
                                       frc_figure(curves, "FRC vs ground truth")])


def plan_comparison(cc: CompareConfig) -> list[tuple[StudyConfig, str]]:
    """Every read-only check before anything runs: the ``--reuse-models`` checkpoints,
    Pty-chi importable, each study's reuse / run decision, each Pty-chi row's settings."""
    m = cc.methods
    parse_reuse(",".join(str(p) for p in cc.reuse), cc.base.model.N, cc.base.model.gridsize,
                trust=cc.base.run.trust_checkpoint)
    if m.iterative or m.refine:
        import_ptychi()  # one line naming the extra when Pty-chi is missing
    plan = [(cfg, plan_study(cfg)) for cfg in cc.studies]
    for engine in m.iterative:
        layout = StudyLayout(cc.output_dir, f"ptychi_{engine}")
        finished_row(metrics_row(layout, iterative_key(cc.base, engine, m.iterative_epochs,
                                                       m.iterative_batch_size)),
                     cc.base.run.overwrite)
    return plan


def run_comparison(cc: CompareConfig, plan=None) -> dict:
    """Run (or reuse) every method, then write the comparison files; returns the JSON dict
    (``{}`` on the extra ranks of a DDP launch)."""
    plan = plan_comparison(cc) if plan is None else plan
    m = cc.methods
    apply_num_threads(cc.base.run.num_threads)
    rows: list[StudyMetrics] = []
    for cfg, _ in plan:
        row = run_or_reuse(cfg)
        if row is None:  # an extra DDP rank: the global-zero process writes the comparison
            return {}
        rows.append(row)
    base = cc.base
    if m.iterative or m.refine or cc.reuse:
        test, data = load_test_data(base)
        networks = list(rows)
        for checkpoint in cc.reuse:
            rows.append(run_reused_row(checkpoint, test, base))
        for engine in m.iterative:
            key = iterative_key(base, engine, m.iterative_epochs, m.iterative_batch_size)
            rows.append(run_iterative_row(engine, test, base, m.iterative_epochs,
                                          m.iterative_batch_size, key))
        for source in networks:
            for engine in m.refine:
                rows.append(run_refined_row(source, engine, test, base, m.refine_epochs,
                                            m.iterative_batch_size))
    else:
        data = study_paths(base).info
    region = common_region(rows)
    out = cc.output_dir
    study = base.to_dict()
    study["model"].pop("architecture")
    result = {
        "methods": [r.to_json() for r in rows],
        "region": region,
        "dataset": data,
        "settings": {"architectures": [c.model.architecture for c in cc.studies],
                     "study": study, "iterative": list(m.iterative),
                     "iterative_epochs": m.iterative_epochs,
                     "iterative_batch_size": m.iterative_batch_size,
                     "refine": list(m.refine), "refine_epochs": m.refine_epochs,
                     "reuse_models": [str(p) for p in cc.reuse]},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    items = [(r.model_id, StudyLayout(out, r.model_id).recon_dir / "recon.npz", r.frc,
              r.registration_shift_px is not None) for r in rows]
    if save_comparison_figure(out / "comparison.png", items) is None:
        log.info("no ground truth: comparison.png not written")
    write_text_atomic(out / "comparison.md", markdown_report(cc, rows, region, data))
    write_json_atomic(out / "comparison.json", result)
    return result


def write_seed_summary(sweep: SeedSweep, results: list[dict]) -> dict:
    """``seeds.json`` / ``seeds.md``: each method's summary over the seeds."""
    summary = summarise_methods(sweep.seeds, [r["methods"] for r in results])
    write_json_atomic(sweep.output_dir / "seeds.json", {
        "seeds": list(sweep.seeds), "summary": summary,
        "comparisons": [str(cc.output_dir) for cc in sweep.runs]})
    write_text_atomic(sweep.output_dir / "seeds.md", "\n".join([
        "# Comparison over seeds", "",
        f"Seeds {', '.join(map(str, sweep.seeds))}; each comparison in seed_<s>/ "
        "(comparison.md). Cells: mean (min..max) over the seeds.", "",
        methods_table(summary), ""]))
    return summary


def print_result(sweep: SeedSweep, result: dict) -> None:
    if sweep.seeds:
        print(methods_table(result["seeds_summary"]))
        print(f"seeds: {(sweep.output_dir / 'seeds.md').resolve()}")
    else:
        print(metrics_table([StudyMetrics.from_json(m) for m in result["methods"]]))
        print(f"comparison: {(sweep.output_dir / 'comparison.md').resolve()}")


def run(parse: Callable[[], SeedSweep]) -> int:
    """The comparison of ``parse()`` (its sweep): planned, run, summarised and reported
    (:func:`ptycho_torch.studies.sweep.sweep_main`). Exit codes: 0 done; 2 refused input
    (one ``error:`` line on stderr, nothing written); 130 (SIGINT) or 143 (SIGTERM)
    interrupted (run the same command again)."""
    return sweep_main(parse, plan_each(plan_comparison), run_comparison,
                      write_seed_summary, print_result,
                      interrupted="run the same command again to continue (finished studies "
                                  "are reused; add --resume to continue an interrupted training)",
                      errors=(StudyError, IterativeUnavailableError))


def main(argv=None) -> int:
    """The comparison of the flags ``argv``, in this process (the ``ptycho-compare`` command
    is :func:`ptycho_torch.studies.commands.compare_main`: its flags checked before torch
    loads)."""
    return run(lambda: sweep_from_argv(argv))
