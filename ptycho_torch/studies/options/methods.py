"""The methods options of a study over several methods (comparison, dose study): the
networks (``--architectures``), the Pty-chi baselines (``--iterative``) and the network +
Pty-chi rows (``--refine``); and the default output folder of a study's command."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from ptycho.config.choices import ARCHITECTURES
from ptycho.config.options import StudyOptions
from ptycho.config.record import described
from ptycho.config.validation import StudyError
from ptycho_torch.ptychi import check_engines


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


def architectures_option(default: str):
    """``--architectures`` with the study's default list."""
    return described(default, "comma-separated architectures (allowed: "
                     f"{', '.join(ARCHITECTURES)})", parse=parse_architectures)


def iterative_option(default: str):
    """``--iterative`` with the study's default engines."""
    return described(default, "comma-separated Pty-chi engines to add as baselines: lsqml "
                     "(Gaussian noise model), lsqml-poisson (Poisson likelihood), epie ('' or "
                     "none: no baseline; needs the optional extra 'iterative')",
                     parse=parse_engines)


@dataclass(frozen=True)
class Methods(StudyOptions):
    """The methods of a study over several methods (comparison, dose study): the networks,
    the Pty-chi baselines and the network + Pty-chi rows. A study's options class derives
    from it, giving ``architectures`` and ``iterative`` its own defaults."""

    architectures: tuple[str, ...] = architectures_option(",".join(ARCHITECTURES))
    iterative: tuple[str, ...] = iterative_option("")
    iterative_epochs: int = described(100, "epochs of each Pty-chi engine")
    iterative_batch_size: int = described(0, "Pty-chi batch size (0: lsqml 100, epie 16)")
    refine: tuple[str, ...] = described(
        "", "comma-separated Pty-chi engines to start at each network's reconstruction (rows "
        "'<network>+<engine>'; '' or none: no such rows)",
        parse=partial(parse_engines, flag="--refine"))
    refine_epochs: int = described(20, "epochs of each --refine engine")

    def __post_init__(self):
        super().__post_init__()
        if self.refine_epochs < 1:
            raise StudyError(f"--refine-epochs={self.refine_epochs} is out of range (allowed: "
                             ">= 1)")
        if self.iterative_epochs < 1:
            raise StudyError(f"--iterative-epochs={self.iterative_epochs} is out of range "
                             "(allowed: >= 1)")
        if self.iterative_batch_size < 0:
            raise StudyError(f"--iterative-batch-size={self.iterative_batch_size} is out of "
                             "range (allowed: >= 0, 0 = the engine's default)")


def default_output_dir(values: dict, stem: str) -> None:
    """``outputs/<stem>[_<preset>]`` unless ``--output-dir`` was given."""
    if "output_dir" not in values:
        preset = values.get("preset", "none")
        values["output_dir"] = f"outputs/{stem}" + ("" if preset in (None, "none") else f"_{preset}")
