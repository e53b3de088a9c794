"""The Pty-chi adapter: the only package that imports Pty-chi (LSQML, ePIE), with known
probe and positions.

Pty-chi (``ptychi`` on PyPI, the optional extra ``iterative``) is imported lazily, by
:func:`import_ptychi`, so the rest of the project never needs it. Without it every entry
point raises :class:`IterativeUnavailableError` (a ``ValueError`` with one line that
names the extra).

Modules: :mod:`.scan` (our scan in Pty-chi's conventions), :mod:`.engine` (tasks and
runs), :mod:`.baseline` (the iterative row of a study), :mod:`.probe` (LSQML probe
refinement), :mod:`.start` (a network's object as the engine's start).

torchvision: Pty-chi imports ``torchvision.transforms.GaussianBlur`` at module level
(used only to smooth *random* initial guesses, which this adapter never asks for).
PyPI's torchvision wheels are CUDA builds that fail to import next to a CPU torch, and a
broken torchvision also breaks ``import lightning`` (torchmetrics imports it). Where
torchvision is not installed at all, :func:`import_ptychi` imports Pty-chi with a
stand-in ``GaussianBlur`` (:mod:`._torchvision`: same kernel and reflect padding as
torchvision's) placed in ``sys.modules`` only for the duration of that import. See
docs/guide/quickstart.md ("Installing Pty-chi") for the install routes and
``scripts/install_iterative.sh`` for the one command.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys

from ptycho_torch.ptychi._torchvision import torchvision_stand_in

# engine name -> (Pty-chi reconstructor, LSQML noise model). lsqml: Pty-chi's default
# Gaussian (amplitude) noise model; lsqml-poisson: its Poisson likelihood (low dose).
ENGINE_SPECS = {"lsqml": ("lsqml", "gaussian"), "lsqml-poisson": ("lsqml", "poisson"),
                "epie": ("epie", None)}
ENGINES = tuple(ENGINE_SPECS)
EXTRA_HINT = "pip install -e '.[iterative]'"
_MISSING = ("Pty-chi is not installed: the iterative baseline needs the optional extra "
            f"'iterative' (bash scripts/install_iterative.sh, beside any torch; or {EXTRA_HINT} "
            "beside a CUDA torch)")


class IterativeUnavailableError(ValueError):
    """Pty-chi (the optional extra ``iterative``) cannot be imported; one-line message."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def import_ptychi():
    """Import Pty-chi lazily; returns ``(api, PtychographyTask)``.

    Raises :class:`IterativeUnavailableError` (one line naming the extra) when Pty-chi is
    missing or cannot be imported.
    """
    try:
        import ptychi  # noqa: F401  (the top-level package imports no torchvision)
    except ImportError:
        raise IterativeUnavailableError(_MISSING) from None
    if "ptychi.api.task" not in sys.modules:
        tv_state = "ok"
        if "torchvision" not in sys.modules:
            if importlib.util.find_spec("torchvision") is None:
                tv_state = "absent"
            else:
                try:
                    importlib.import_module("torchvision.transforms")
                except Exception as err:  # noqa: BLE001 - any failure: explain, one line
                    raise IterativeUnavailableError(
                        f"torchvision is installed but does not import next to this torch "
                        f"({_first_line(err)}); install the torchvision build that matches "
                        "torch (CPU torch: the CPU wheel), or uninstall torchvision to use the "
                        "built-in stand-in; see docs/guide/quickstart.md") from None
        ctx = torchvision_stand_in() if tv_state == "absent" else contextlib.nullcontext()
        try:
            with ctx:
                for name in ("ptychi.utils", "ptychi.api", "ptychi.api.task"):
                    importlib.import_module(name)
        except ImportError as err:
            raise IterativeUnavailableError(
                f"Pty-chi is installed but cannot be imported ({_first_line(err)}); "
                f"reinstall the optional extra 'iterative' ({EXTRA_HINT})") from None
    api = sys.modules["ptychi.api"]
    return api, sys.modules["ptychi.api.task"].PtychographyTask


def ptychi_available() -> bool:
    """True when :func:`import_ptychi` succeeds."""
    try:
        import_ptychi()
    except IterativeUnavailableError:
        return False
    return True


def check_engines(engines) -> tuple[str, ...]:
    """Validate engine names (``lsqml``, ``epie``); returns them as a tuple, order kept."""
    out = []
    for e in engines:
        e = str(e).strip().lower()
        if e not in ENGINES:
            raise ValueError(f"iterative engine {e!r} is not supported (allowed: {', '.join(ENGINES)})")
        if e not in out:
            out.append(e)
    return tuple(out)
