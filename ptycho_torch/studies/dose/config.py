"""The dose study's options (:class:`DoseOptions`, its flags), its config (:class:`DoseConfig`) and
its command line: torch-free, in :mod:`ptycho_torch.studies.options.dose`, re-exported here."""
from __future__ import annotations

from ptycho_torch.studies.options.dose import (  # noqa: F401  (re-exported: imported from here)
    DoseConfig,
    DoseOptions,
    build_parser,
    config_from_argv,
    dose_config,
    parse_doses,
    parse_transfer,
)
