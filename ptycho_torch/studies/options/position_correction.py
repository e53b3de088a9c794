"""The position-correction study's command line (``scripts/studies/position_correction.py``):
its options (:class:`PositionOptions`) parsed and checked; no torch."""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import ClassVar

from ptycho.config.cli import add_options
from ptycho.config.options import StudyOptions
from ptycho.config.record import described
from ptycho.config.validation import StudyError

#: the command's description (the first line of the script's docstring)
DESCRIPTION = ("Position correction on a scan with known truth "
               "(ptycho_torch.studies.position_correction).")


@dataclass(frozen=True)
class PositionOptions(StudyOptions):
    """The options of ``scripts/studies/position_correction.py``."""

    title: ClassVar[str] = "position correction"
    dataset: str = field(metadata={"positional": True, "help": "a dataset.npz written by "
                                                               "make_example_scan.py --from"})
    output: str = field(metadata={"required": True, "help": "the JSON to write"})
    epochs: int = described(50, "LSQML epochs of each of the three refinements")
    seed: int = described(0, "seed of the refinements' seeded Pty-chi steps")
    num_threads: int = described(2, "torch CPU threads")

    def __post_init__(self):
        super().__post_init__()
        if self.epochs < 1:
            raise StudyError(f"--epochs={self.epochs} is out of range (allowed: >= 1)")


def parse_positions(argv=None) -> PositionOptions:
    """The options of the command line ``argv`` (a ValueError, one line, on a bad value;
    argparse's usage and exit 2 on a malformed command line)."""
    p = argparse.ArgumentParser(description=DESCRIPTION, allow_abbrev=False)
    add_options(p, PositionOptions)
    return PositionOptions.from_values(vars(p.parse_args(argv)))


def refusal(err: BaseException) -> int:
    """This command's one ``error:`` line (the error's first line) and its exit code 2."""
    print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
    return 2
