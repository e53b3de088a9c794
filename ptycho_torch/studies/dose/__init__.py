"""Dose study: networks against Pty-chi over photons per pattern (the ``ptycho-dose-study`` CLI).

The command is :func:`ptycho_torch.studies.commands.dose_main` (its flags checked without
torch, :mod:`ptycho_torch.studies.options.dose`), then :func:`run` here; :func:`main` is the
same in one process.

For each dose in ``--nphotons-list`` the grid-lines dataset is simulated with the same
objects, scan and seeds (only ``nphotons`` changes, hence only the Poisson noise), and every
(method, dose) cell is written in its own folder ``<out>/dose_<value>/runs/<method>/``
(reconstruction in ``recons/<method>/``; one shared dataset cache ``<out>/datasets``).
Methods per dose:

* ``pinn_<arch>``           each ``--architectures`` network trained at this dose, final weights;
  loss by :func:`loss_for_dose` (Poisson NLL below 1e6 photons, amplitude MAE at and above)
  unless ``--loss`` is given on the command line;
* ``pinn_<arch>@bestval``   the same run's checkpoint with the lowest validation loss (the
  validation split is held out of the training patterns: no ground truth involved);
* ``pinn_<arch>@<dose0>``   the network trained at ``--transfer-from`` (default: the highest
  dose <= 1e4 in the list) applied to this dose's test scan (one model for every dose);
* ``ptychi_<engine>``        Pty-chi at the fixed ``--iterative-epochs``;
* ``ptychi_<engine>@heldout`` Pty-chi at the epoch chosen without ground truth: ~10 % of the
  scan positions (seeded) are held out, the rest reconstructed, and the held-out patterns'
  Poisson residual evaluated every ``--heldout-every`` epochs (:func:`heldout_curve`); the
  full-scan reconstruction at the epoch of the lowest held-out residual is reported
  (:func:`select_epoch`);
* ``ptychi_<engine>@oracle``  the full-scan checkpoint with the best ground-truth phase PSNR
  (an upper bound for any epoch rule; not a fair baseline).

Outputs in ``<out>``: ``dose_study.json`` / ``.md`` (one row per (method, dose), every metric
of the comparison table; the crossover), ``dose_study.png`` (metrics against dose: the best
network, ground-truth-free iterative and network + iteration row at each dose),
``dose_study_all.png`` (every row) and ``dose_grid.png`` (phase, method by dose). An
interrupted sweep continues per cell: finished cells with the same settings are reused
(``--resume`` continues a training cut short).
"""
from __future__ import annotations

import logging
import time
from typing import Callable


from ptycho.artifacts import StudyLayout, write_json_atomic, write_text_atomic
from ptycho.config.validation import StudyError
from ptycho_torch.studies.common import run_or_reuse
from ptycho_torch.engine.device import resolve_device
from ptycho_torch.ptychi import IterativeUnavailableError
from ptycho_torch.studies.dose.rules import DOSE_METRICS, RULES, format_dose
from ptycho_torch.studies.dose.config import DoseConfig, build_parser, config_from_argv
from ptycho_torch.studies.dose.cells import (
    Row,
    _TestData,
    best_val_row,
    iterative_rows,
    plan_sweep,
    refine_sources,
    refined_rows,
    transfer_rows,
)
from ptycho_torch.studies.dose.seeds import sweep_from_argv, write_seed_summary
from ptycho_torch.studies.sweep import SeedSweep, plan_each, sweep_main
from ptycho_torch.studies.dose.report import (
    crossovers,
    markdown_report,
    method_order,
    save_figures,
)
from ptycho_torch.engine.threads import apply_num_threads


__all__ = ["DoseConfig", "build_parser", "config_from_argv", "format_dose", "main",
           "run_dose_study", "sweep_from_argv"]

log = logging.getLogger(__name__)


def run_dose_study(dc: DoseConfig, plan: dict | None = None) -> dict:
    """Run (or reuse) every cell, then write the dose-study files; returns the JSON dict
    (``{}`` on the extra ranks of a DDP launch)."""
    plan = plan_sweep(dc) if plan is None else plan
    apply_num_threads(dc.base.run.num_threads)
    tests = _TestData(dc)
    device = resolve_device(dc.base.training.device)
    rows, finals = [], {}
    for dose in dc.doses:
        for arch in dc.methods.architectures:
            cfg = dc.study(dose, arch)
            log.info("dose %s: %s (loss %s)", format_dose(dose), cfg.model_id, cfg.training.loss)
            m = run_or_reuse(cfg)
            if m is None:
                return {}
            finals[(dose, arch)] = m
            rows.append(Row(cfg.model_id, dose, m, StudyLayout(dc.dose_dir(dose), cfg.model_id)))
        for arch in dc.methods.architectures:
            row = best_val_row(dc, dose, arch, finals[(dose, arch)], tests, device)
            if row is not None:
                rows.append(row)
        for engine in dc.methods.iterative:
            rows += iterative_rows(dc, dose, engine, tests)
    if dc.transfer_from is not None:
        for arch in dc.methods.architectures:
            rows += transfer_rows(dc, arch, finals, tests, device)
    for dose in dc.doses:
        for source, checkpoint in refine_sources(dc, dose, rows):
            for engine in dc.methods.refine:
                rows += refined_rows(dc, dose, source, checkpoint, engine, tests, device)
    order = {m: i for i, m in enumerate(method_order(dc))}
    rows.sort(key=lambda r: (r.dose, order.get(r.method, len(order))))
    methods = [m for m in method_order(dc) if any(r.method == m for r in rows)]
    cross = crossovers(rows, dc.doses, methods)
    save_figures(dc, rows, cross)
    out = dc.output_dir
    study = dc.base.to_dict()  # per cell: nphotons, architecture (and the loss by the rule)
    study["simulation"].pop("nphotons")
    study["model"].pop("architecture")
    if dc.loss is None:
        study["training"].pop("loss")
    result = {
        "doses": list(dc.doses), "methods": methods, "crossover": cross,
        "rows": [r.to_json(out) for r in rows], "rules": RULES,
        "settings": {"study": study, "architectures": list(dc.methods.architectures),
                     "loss": dc.loss or "by dose", "iterative": list(dc.methods.iterative),
                     "iterative_epochs": dc.methods.iterative_epochs,
                     "iterative_batch_size": dc.methods.iterative_batch_size,
                     "refine": list(dc.methods.refine),
                     "refine_epochs": dc.methods.refine_epochs,
                     "heldout_fraction": dc.heldout_fraction, "heldout_every": dc.heldout_every,
                     "transfer_from": dc.transfer_from},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_text_atomic(out / "dose_study.md", markdown_report(dc, rows, cross))
    write_json_atomic(out / "dose_study.json", result)
    return result


def print_result(sweep: SeedSweep, result: dict) -> None:
    if sweep.seeds:
        for label, _, _, name in DOSE_METRICS[:2]:
            c = result["seeds_summary"]["crossover"][name]
            where = (f"{c['geometric_mean']:.3g} photons (geometric mean; {c['min']:.3g}.."
                     f"{c['max']:.3g})" if c["n_crossing"] else "none")
            print(f"{label} crossover over seeds {','.join(map(str, sweep.seeds))}: {where}; "
                  f"{c['n_crossing']} of {len(sweep.seeds)} seeds cross")
        print(f"dose study over seeds: {(sweep.output_dir / 'seeds.md').resolve()}")
        return
    for label, _, _, name in DOSE_METRICS[:2]:
        c = result["crossover"][name]
        print(f"{label} crossover: " + (f"{c['dose']:.3g} photons" if c["dose"] is not None
                                        else f"none ({c['reason']})"))
    print(f"dose study: {(sweep.output_dir / 'dose_study.md').resolve()}")


def run(parse: Callable[[], SeedSweep]) -> int:
    """The dose study of ``parse()`` (its sweep): planned, run, summarised and reported.
    Exit codes: 0 done; 2 refused input (one ``error:`` line, nothing written); 130 (SIGINT)
    or 143 (SIGTERM) interrupted (run the same command again, with --resume)."""
    return sweep_main(parse, plan_each(plan_sweep), run_dose_study,
                      write_seed_summary, print_result,
                      interrupted="run the same command again with --resume to continue "
                                  "(finished cells are reused)",
                      errors=(StudyError, IterativeUnavailableError))


def main(argv=None) -> int:
    """The dose study of the flags ``argv``, in this process (the ``ptycho-dose-study``
    command is :func:`ptycho_torch.studies.commands.dose_main`: its flags checked before
    torch loads)."""
    return run(lambda: sweep_from_argv(argv))
