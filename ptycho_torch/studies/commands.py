"""The studies' entry points: ``ptycho-compare``, ``ptycho-dose-study``, ``ptycho-seeds`` and
the scripts under ``scripts/studies`` (learning curve, reference levels, position
correction).

This module imports no torch. Each entry point parses and checks its flags with the
study's torch-free command line (:mod:`ptycho_torch.studies.options`), turns a refused
flag into one ``error:`` line on stderr and exit code 2, as the study itself would, and
only then imports the study's work: one deferred import per entry point, named in
``tests/test_package_shape.py`` (``DEFERRED``). So a bad flag answers in well under a
second instead of after torch and Lightning load. The refusals that need the output folder
or the files named (a finished row with other settings, a checkpoint of another N) come
from the study's plan, after that import and still before any work. (``ptycho-study`` and
``ptycho-reconstruct`` do the same in :mod:`ptycho_torch.cli`; the quality gate's module
imports no torch itself.)
"""
from __future__ import annotations

import logging
from typing import Callable

from ptycho_torch.cli import refuse
from ptycho_torch.studies.options import comparison, dose, learning_curve, seeds
from ptycho_torch.studies.options.position_correction import parse_positions, refusal
from ptycho_torch.studies.options.reference_levels import parse_levels


def checked(parse: Callable[[], object], work: Callable[[object], int]) -> int:
    """``work(parse())``; a ``ValueError`` of ``parse`` (StudyError, ConfigError): one
    ``error:`` line (:func:`ptycho_torch.cli.refuse`), exit code 2, and ``work`` is never
    imported."""
    try:
        parsed = parse()
    except ValueError as err:
        return refuse(err)
    return work(parsed)


def compare_main(argv=None) -> int:
    """``ptycho-compare`` (:mod:`ptycho_torch.studies.comparison`). Exit codes: 0 done; 2
    refused input (one ``error:`` line on stderr, nothing written); 130 (SIGINT) or 143
    (SIGTERM) interrupted (run the same command again)."""
    return checked(lambda: comparison.sweep_from_argv(argv), _compare)


def _compare(sweep) -> int:
    from ptycho_torch.studies.comparison import run  # deferred: torch loads after the flags' checks
    return run(lambda: sweep)


def dose_main(argv=None) -> int:
    """``ptycho-dose-study`` (:mod:`ptycho_torch.studies.dose`). Exit codes: 0 done; 2
    refused input (one ``error:`` line, nothing written); 130 (SIGINT) or 143 (SIGTERM)
    interrupted (run the same command again, with --resume)."""
    return checked(lambda: dose.sweep_from_argv(argv), _dose)


def _dose(sweep) -> int:
    from ptycho_torch.studies.dose import run  # deferred, as in _compare
    return run(lambda: sweep)


def seeds_main(argv=None) -> int:
    """``ptycho-seeds`` (:mod:`ptycho_torch.studies.seeds`). Exit codes: 0 done; 2 refused
    input; 130 (SIGINT) or 143 (SIGTERM) interrupted (run the same command again: finished
    seeds are reused)."""
    return checked(lambda: seeds.config_from_argv(argv), _seeds)


def _seeds(sweep) -> int:
    from ptycho_torch.studies.seeds import run  # deferred, as in _compare
    return run(lambda: sweep)


def learning_curve_main(argv=None, prog: str = "learning_curve.py") -> int:
    """``scripts/studies/learning_curve.py`` (:mod:`ptycho_torch.studies.learning_curve`).
    Exit codes: 0 done; 2 refused input (one ``error:`` line on stderr); 130 interrupted."""
    return checked(lambda: learning_curve.sweep_from_argv(argv, prog), _learning_curve)


def _learning_curve(sweep) -> int:
    from ptycho_torch.studies.learning_curve import run  # deferred, as in _compare
    return run(lambda: sweep)


def reference_levels_main(argv=None, prog: str = "reference_levels.py") -> int:
    """``scripts/studies/reference_levels.py`` (:mod:`ptycho_torch.studies.reference_levels`):
    exit 0, or 2 on bad input (one ``error:`` line)."""
    return checked(lambda: parse_levels(argv, prog), _reference_levels)


def _reference_levels(options) -> int:
    from ptycho_torch.studies.reference_levels import report  # deferred, as in _compare
    return report(options)


def position_correction_main(argv=None) -> int:
    """``scripts/studies/position_correction.py``
    (:mod:`ptycho_torch.studies.position_correction`): the JSON written (its path printed),
    exit 0; 2 on bad input (one ``error:`` line, the error's first line)."""
    try:
        options = parse_positions(argv)
    except ValueError as err:
        return refusal(err)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from ptycho_torch.studies.position_correction import run  # deferred, as in _compare
    return run(options)
