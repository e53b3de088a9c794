"""The metrics record of one method on one scan: network and iterative rows alike.

:class:`StudyMetrics` is written once, as ``runs/<model_id>/metrics.json``. The metric
keys of the reference study's consumers sit at the top level, each ``[amplitude, phase]``:
``mae, mse, psnr, ssim, frc50`` (plus ``psnr_legacy255``, ``frc_1_7`` and ``frc_halfbit``),
and ``frc`` holds the curves. An FRC crossing that the curve never reached is ``null`` with
its companion ``<key>_censored`` (``frc50_censored``, ...: ``[amplitude, phase]``, each
``null`` for a measured crossing or ``">= 0.5"``), shown so in the tables. What the
alignment removed before scoring is kept beside them: ``phase_offset`` (rad),
``phase_ramp`` (rad/px, ``[x, y]``), ``registration_shift_px`` (``[x, y]``, ``null`` when
the row was not registered). Without ground truth they are ``null`` and ``ground_truth`` is false;
``data_residual`` (ground-truth-free) is reported either way: of the delivered object
(the stitched reconstruction for network rows, the engine's object for iterative rows);
network rows add ``patch_residual``, of their raw patches before stitching
(``ptycho_torch.core.residual``), ``two_half_frc``, the FRC50 of the objects stitched from
the even and the odd patterns (``ptycho.two_half_frc``), ``neighbour_disagreement``, the
median phase disagreement of overlapping patches in rad (``ptycho.neighbour_agreement``),
and ``probe_fill``, the fraction of the window inside the disk holding 90 % of the probe's
energy (``ptycho.probes.probe_fill``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from ptycho.frc import THRESHOLD_KEYS, censored_bound
from ptycho.metric_catalogue import METRIC_NAMES as METRIC_KEYS
from ptycho.metric_catalogue import metrics

#: what ``ptycho.evaluation`` removed before scoring, copied by :meth:`StudyMetrics.set_scores`
REMOVED_KEYS = ("phase_offset", "phase_ramp", "registration_shift_px")
KINDS = ("network", "iterative", "refined")  # refined: an engine started at a network's object


@dataclass
class StudyMetrics:
    """One row of a study: quality, data residual, cost, and how it was obtained."""

    model_id: str
    kind: str
    ground_truth: bool
    mae: Optional[list] = None
    mse: Optional[list] = None
    psnr: Optional[list] = None
    psnr_legacy255: Optional[list] = None
    ssim: Optional[list] = None
    frc50: Optional[list] = None
    frc_1_7: Optional[list] = None
    frc_halfbit: Optional[list] = None
    frc50_censored: Optional[list] = None       # [amplitude, phase]: None or ">= 0.5"
    frc_1_7_censored: Optional[list] = None
    frc_halfbit_censored: Optional[list] = None
    frc: Optional[dict] = None
    phase_correlation: Optional[float] = None
    phase_strength_ratio: Optional[float] = None
    amplitude_scale: Optional[float] = None
    phase_offset: Optional[float] = None           # rad, removed before scoring
    phase_ramp: Optional[list] = None              # rad/px [x, y], removed before scoring
    registration_shift_px: Optional[list] = None   # [x, y] removed; None: not registered
    data_residual: dict = field(default_factory=dict)
    patch_residual: Optional[dict] = None  # network rows: the raw patches' residual
    two_half_frc: Optional[dict] = None    # network rows: ptycho.two_half_frc
    neighbour_disagreement: Optional[float] = None  # network rows (rad): ptycho.neighbour_agreement
    probe_fill: Optional[float] = None     # network rows: ptycho.probes.probe_fill
    stitch: dict = field(default_factory=dict)
    region: Optional[list] = None
    n_test_patterns_scored: int = 0
    inference_time_s: Optional[float] = None
    inference_patterns_per_s: Optional[float] = None
    infer_batch_size_used: Optional[int] = None
    stitch_time_s: Optional[float] = None
    device: str = ""
    torch_threads: Optional[int] = None   # torch's CPU threads for the whole run
    precision: Optional[str] = None       # networks: '32' or 'bf16-mixed' (prediction's)
    # networks
    architecture: Optional[str] = None
    n_parameters: Optional[int] = None
    epochs_completed: Optional[int] = None
    steps_completed: Optional[int] = None
    epochs_trained: Optional[float] = None
    stop_reason: Optional[str] = None
    wall_time_cap_hit: Optional[bool] = None
    resumed_from_epoch: Optional[int] = None
    candidates: Optional[list] = None     # the starts chosen from: ptycho_torch.pipeline.candidates
    world_size: Optional[int] = None
    n_train_patterns: Optional[int] = None
    n_val_patterns: Optional[int] = None
    train_time_s: Optional[float] = None
    train_patterns_per_s: Optional[float] = None
    final_train_loss: Optional[float] = None
    final_val_loss: Optional[float] = None
    input_scale: Optional[float] = None
    normalisation: Optional[str] = None
    # ptycho-reconstruct: the scale that brought the scan to the model's units
    # ({"value", "relative", "source"}, ptycho.formats.model_units)
    scan_scale: Optional[dict] = None
    data_time_s: Optional[float] = None
    total_time_s: Optional[float] = None
    torch_version: Optional[str] = None
    figures: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    # iterative engines
    engine: Optional[str] = None
    batch_size: Optional[int] = None
    loss: Optional[list] = None
    compare_key: Optional[dict] = None
    note: Optional[str] = None
    # refined rows: the network row whose object started the engine
    initialized_from: Optional[str] = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"StudyMetrics.kind={self.kind!r} is not allowed (choose one of: "
                             f"{', '.join(repr(k) for k in KINDS)})")

    def set_scores(self, result: dict) -> None:
        """Take the metrics of ``ptycho.evaluation.evaluate_reconstruction``."""
        for key in METRIC_KEYS:
            setattr(self, key, list(result["metrics"][key]))
        for key in THRESHOLD_KEYS:
            setattr(self, f"{key}_censored", list(result[f"{key}_censored"]))
        for key in ("frc", "phase_correlation", "phase_strength_ratio", "amplitude_scale",
                    *REMOVED_KEYS):
            setattr(self, key, result[key])

    def censored(self, key: str, channel: int) -> str | None:
        """The censored label (``">= 0.5"``) of FRC crossing ``key`` at ``channel``, or None
        (a measured crossing, another metric, or a record written before censoring)."""
        flags = getattr(self, f"{key}_censored", None)
        if not isinstance(flags, list) or len(flags) <= channel:
            return None
        return flags[channel] if isinstance(flags[channel], str) else None

    def value(self, key: str, channel: int, *, censored_at_bound: bool = False) -> float:
        """``key`` of channel 0 (amplitude) or 1 (phase); NaN when absent or null. A
        censored FRC crossing is NaN too, or, with ``censored_at_bound``, its bound (the
        last ring's frequency, 0.5: the crossing lies there or beyond)."""
        v = getattr(self, key)
        if v is None or v[channel] is None:
            bound = censored_bound(self.censored(key, channel)) if censored_at_bound else None
            return math.nan if bound is None else bound
        try:
            return float(v[channel])
        except (TypeError, ValueError):  # 'inf' / 'nan' strings of strict JSON
            return float(str(v[channel]))

    def cell(self, key: str, channel: int, digits: int = 4) -> str:
        """A table cell: the censored label of a crossing never reached, '-' when absent,
        else :func:`format_number`."""
        label = self.censored(key, channel)
        if label is not None:
            return label
        if getattr(self, key) is None:
            return "-"
        return format_number(self.value(key, channel), digits)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> StudyMetrics:
        """From a metrics.json (keys this version does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# (label, key, channel) of the table's metric columns; channel 0 amplitude, 1 phase
TABLE_COLUMNS = tuple((m.header, m.record, m.channel if isinstance(m.channel, int) else 0)
                      for m in metrics(
    "amp_mae", "phase_mae", "amp_psnr", "phase_psnr", "amp_ssim", "phase_ssim", "amp_frc50",
    "phase_frc50"))
_MORE_COLUMNS = metrics("phase_correlation", "phase_strength_ratio", "data_residual")
_TIME_COLUMNS = metrics("train_time_s", "inference_time_s")


def format_number(v: Any, digits: int = 4) -> str:
    """A metric for a table: ``digits`` significant digits, 'inf'/'nan' spelled out,
    ``None`` as '-', and anything non-numeric as its text."""
    if v is None:
        return "-"
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}g}"


def format_crossing(value: Any, censored: Any, digits: int = 4) -> str:
    """An FRC crossing for a table: its censored label (``">= 0.5"``) when the curve never
    crossed, else :func:`format_number` of the value."""
    return censored if isinstance(censored, str) else format_number(value, digits)


def metrics_table(rows: list[StudyMetrics]) -> str:
    """The one markdown table of study rows (runner summary, comparison, dose study)."""
    head = (["method"] + [c[0] for c in TABLE_COLUMNS] + [m.header for m in _MORE_COLUMNS]
            + ["parameters"] + [m.header for m in _TIME_COLUMNS] + ["patterns/s"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.model_id]
        cells += [r.cell(key, ch) for _, key, ch in TABLE_COLUMNS]
        cells += [format_number(r.phase_correlation, 3),
                  format_number(r.phase_strength_ratio, 3),
                  format_number(r.data_residual.get("amplitude_mae"), 4),
                  "-" if r.n_parameters is None else f"{int(r.n_parameters):,}",
                  format_number(r.train_time_s, 3), format_number(r.inference_time_s, 3),
                  format_number(r.inference_patterns_per_s, 4)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
