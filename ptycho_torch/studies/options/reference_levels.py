"""The reference levels' command line (``scripts/studies/reference_levels.py``): its options
(:class:`LevelsOptions`) parsed and checked; no torch."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import ClassVar

from ptycho.config.cli import add_options
from ptycho.config.options import StudyOptions
from ptycho.config.record import described

DEFAULT_SIGMAS = (1.0, 2.0, 4.0)
#: the command's description (the first paragraph of ptycho_torch.studies.reference_levels)
DESCRIPTION = """What a score means on one scan: the metrics of simple reference objects, and the
training loss of the true amplitude with no phase."""


def parse_sigmas(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(s) for s in text.split(","))
    except ValueError:
        raise ValueError(f"--sigmas={text!r} is not a comma-separated list of numbers "
                         "(allowed: e.g. 1,2,4)") from None


@dataclass(frozen=True)
class LevelsOptions(StudyOptions):
    """The reference levels' options (the command's arguments)."""

    title: ClassVar[str] = "reference levels"
    recon: tuple[str, ...] = field(metadata={
        "positional": True, "nargs": "+", "help": "a study's recons/<model_id>/recon.npz; the "
        "first one's ground truth (clipped to its region) defines the reference objects"})
    test_npz: str | None = described(
        None, "the test dataset with its ground truth: adds the training loss of the true "
        "object and of its zero-phase amplitude")
    sigmas: tuple[float, ...] = described(
        ",".join(f"{s:g}" for s in DEFAULT_SIGMAS), "Gaussian blurs of the ground truth in "
        "pixels, comma-separated", parse=parse_sigmas)
    register: bool = described(
        False, "score the given reconstructions with their sub-pixel translation removed (rows "
        "whose positions were corrected; the reference objects, made from the ground truth, "
        "never are)", switch=True)


def parse_levels(argv=None, prog: str = "reference_levels.py") -> LevelsOptions:
    """The options of the command line ``argv`` (a ValueError, one line, on a bad value;
    argparse's usage and exit 2 on a malformed command line)."""
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_options(p, LevelsOptions)
    return LevelsOptions.from_values(vars(p.parse_args(argv)))
