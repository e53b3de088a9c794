"""The learning curve's options (:class:`CurveOptions`: budgets in minutes, steps or epochs),
its config and its command line: torch-free, in
:mod:`ptycho_torch.studies.options.learning_curve`, re-exported here."""
from __future__ import annotations

from ptycho_torch.studies.options.learning_curve import (  # noqa: F401  (re-exported: imported from here)
    BUDGET_FIELDS,
    BUDGET_KINDS,
    BUDGET_UNITS,
    CurveOptions,
    JSON_NAME,
    LearningCurveConfig,
    MAX_EPOCHS,
    PANELS,
    PNG_NAME,
    WORK_NAME,
    build_parser,
    config_from_argv,
    curve_config,
    make_config,
    parse_budgets,
    training_budget,
)
