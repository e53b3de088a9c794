"""What a model file asks of reconstruction: the network alone, or the network then K
Pty-chi LSQML epochs started from its object (``ptycho-reconstruct --refine`` inside
Ptychodus).

Ptychodus' reconstruct call carries no settings, only the model file, so the choice is a
property of the model file: ``hyper_parameters["reconstruct"] = {"refine": "lsqml",
"refine_epochs": K}``. Set it once on a trained model::

    python -m ptycho_torch.api.refine_plan RUN/model.ckpt --refine lsqml --refine-epochs 20

(in place, atomically; ``--output OTHER.ckpt`` writes a copy instead). Ptychodus' log then
says, at every reconstruction, that the network's object is polished by K LSQML epochs with
the input product's probe and positions held fixed (Ptychodus writes the input probe into
the output product, so the object must be fitted to that probe). It needs Pty-chi in the
environment Ptychodus runs in (``scripts/install_iterative.sh``), else the reconstruction is
refused in one line before any work.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ptycho.artifacts import atomic_path
from ptycho.config.choices import REFINE_ENGINES
from ptycho.config.validation import ConfigError, StudyError, check_choice, check_int
from ptycho_torch.model.checkpoint import load_checkpoint

__all__ = ["RefinePlan", "main", "set_refine_plan"]

KEY = "reconstruct"


@dataclass(frozen=True)
class RefinePlan:
    """``refine`` ('none' or 'lsqml') and ``refine_epochs`` (1..100000 with 'lsqml')."""

    refine: str = "none"
    refine_epochs: int = 0

    def __post_init__(self) -> None:
        check_choice("RefinePlan", "refine", self.refine, REFINE_ENGINES)
        if self.refine == "none":
            if self.refine_epochs != 0:
                raise ConfigError(f"RefinePlan.refine_epochs={self.refine_epochs!r} has no "
                                  "effect with refine='none' (allowed: 0)", "RefinePlan",
                                  "refine_epochs")
        else:
            check_int("RefinePlan", "refine_epochs", self.refine_epochs, 1, 100000)

    @classmethod
    def of(cls, hyper_parameters) -> "RefinePlan":
        """The plan a checkpoint's ``hyper_parameters`` record ('none' when absent)."""
        value = (hyper_parameters or {}).get(KEY)
        return cls() if not value else cls(**dict(value))

    def describe(self) -> str:
        if self.refine == "none":
            return "the network's object"
        return (f"the network's object, then {self.refine_epochs} Pty-chi LSQML epochs from "
                "it (object only; the input probe and positions fixed)")


def set_refine_plan(path, plan: RefinePlan, output=None) -> Path:
    """Record ``plan`` in the model file ``path`` (weights-only read; written atomically
    to ``output``, default ``path`` itself)."""
    ckpt = load_checkpoint(path, flag="model file")
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or "model_config" not in hp:
        raise StudyError(f"checkpoint '{path}': holds no model_config (expected a model.ckpt "
                         "written by ptychopinn-torch)")
    hp[KEY] = asdict(plan)
    out = Path(output or path)
    with atomic_path(out) as tmp:
        torch.save(ckpt, tmp)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ptycho_torch.api.refine_plan",
                                description="Set what a model file asks of reconstruction.")
    p.add_argument("checkpoint")
    p.add_argument("--refine", default="lsqml", help="none or lsqml (default lsqml)")
    p.add_argument("--refine-epochs", type=int, default=20)
    p.add_argument("--output", default=None, help="write a copy here instead of in place")
    a = p.parse_args(argv)
    try:
        plan = RefinePlan(a.refine, a.refine_epochs if a.refine != "none" else 0)
        if not Path(a.checkpoint).is_file():
            raise StudyError(f"checkpoint '{a.checkpoint}': file does not exist")
        out = set_refine_plan(a.checkpoint, plan, a.output)
    except (ConfigError, StudyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{out}: reconstruction = {plan.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
