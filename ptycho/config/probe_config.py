"""The probe and the scan positions as estimates: how a study improves them.

A file's probe is a model or an earlier reconstruction, and its positions are what the
stage encoders said; both are estimates (docs/guide/own-scan.md, "Probe and positions"). The routes:

* ``lsqml``: before training, Pty-chi LSQML refines object and probe on the training scan
  (``--refine-probe-epochs`` epochs, 50 when not given), and the positions too when they
  are corrected (``refine_positions``); the network then trains with the refined probe
  (and positions);
* ``learn``: a probe correction trained with the network in the forward model
  (:mod:`ptycho_torch.core.learned_probe`, pure torch, no Pty-chi), with its own learning rate
  and a warm-up in which the object learns first;
* ``auto``: ``none`` on simulated data (its probe is the true one); on a file ``lsqml``
  when Pty-chi is installed, else ``learn``;
* ``none``: the probe as given (``--refine-probe-epochs K`` alone still selects ``lsqml``).

``refine_positions``: unset (``None``, auto) corrects the positions when ``auto`` runs
LSQML on a file, the default for a real scan, whose encoder positions are an estimate;
``--refine-positions`` corrects them on any lsqml route, ``--no-refine-positions`` never.
An explicit ``--probe-update lsqml`` keeps them unless ``--refine-positions`` is given.
"""
from __future__ import annotations

from dataclasses import dataclass

from ptycho.config.choices import PROBE_UPDATES
from ptycho.config.record import Record, described
from ptycho.config.validation import check_bool, check_float, check_int

DEFAULT_LSQML_EPOCHS = 50


@dataclass(frozen=True)
class ProbeConfig(Record):
    """How the probe and the positions are improved (module docstring)."""

    probe_update: str = described(
        "none", "how the file's probe is improved: none (as given), lsqml (Pty-chi LSQML on the "
        "training scan before training), learn (a probe correction trained with the network), "
        "auto (none on simulated data; lsqml with Pty-chi installed, else learn)",
        choices=PROBE_UPDATES)
    probe_learning_rate: float = described(
        1e-3, "learn: learning rate of the probe correction (in units of the probe's peak "
        "amplitude)")
    probe_warmup_epochs: int = described(
        1, "learn: epochs the probe stays fixed before it is trained (the object first)")
    refine_positions: bool | None = described(
        None, "correct the scan positions during the LSQML probe refinement (Pty-chi's "
        "position correction) and stitch at the corrected positions; unset: corrected when "
        "--probe-update auto runs LSQML on a file, --no-refine-positions: never")

    def __post_init__(self) -> None:
        o = "ProbeConfig"
        self._check_choices()
        check_float(o, "probe_learning_rate", self.probe_learning_rate, 0.0, 1.0, lo_open=True)
        check_int(o, "probe_warmup_epochs", self.probe_warmup_epochs, 0, 100000)
        if self.refine_positions is not None:
            check_bool(o, "refine_positions", self.refine_positions)
