"""Every metric a study reports, once: its names in each place it appears, unit and sense.

A study row (:class:`ptycho.study_metrics.StudyMetrics`) holds the scores of
``ptycho.evaluation`` as ``record`` fields of ``[amplitude, phase]`` (:data:`METRIC_NAMES`);
tables, summaries over seeds, learning-curve points and figures name them from
:data:`CATALOGUE`, so one metric has one entry:

* ``key``: the flat JSON key of a learning-curve point or reference (``amp_ssim``);
* ``record``, ``channel``: where a row keeps it (``ssim``, 0 amplitude / 1 phase, a
  ``data_residual`` entry by name, a ``(name, 0 | 1)`` pair for the ``[amplitude, phase]``
  list ``name`` of a dict record such as ``two_half_frc``, or None for a plain number);
* ``header``: the column of a table and the label of a summary over seeds (``amp SSIM``);
* ``label`` and ``unit``: a figure's words (``amplitude PSNR`` in ``dB``; :attr:`Metric.title`
  joins them); ``higher_is_better``: the sense of "best".
"""
from __future__ import annotations

from dataclasses import dataclass

#: the keys of ``ptycho.evaluation.evaluate_reconstruction(...)["metrics"]`` and of the
#: ``[amplitude, phase]`` fields of a study row, in order
METRIC_NAMES = ("mae", "mse", "psnr", "psnr_legacy255", "ssim", "frc50", "frc_1_7", "frc_halfbit")
CHANNELS = ("amplitude", "phase")


@dataclass(frozen=True)
class Metric:
    key: str
    record: str
    channel: int | str | tuple[str, int] | None
    header: str
    label: str
    unit: str = ""
    higher_is_better: bool = True

    @property
    def title(self) -> str:
        """A figure's axis or panel title: the label with its unit."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    @property
    def long_key(self) -> str:
        """``amplitude_psnr``, ``phase_frc50``: the dose study's JSON name of a channel
        metric."""
        if not isinstance(self.channel, int):
            raise ValueError(f"metric {self.key!r} has no amplitude / phase channel")
        return f"{CHANNELS[self.channel]}_{self.record}"


def _pair(record: str, name: str, unit: str = "", higher: bool = True) -> tuple[Metric, ...]:
    return tuple(Metric(f"{short}_{record}", record, ch, f"{short} {name}", f"{word} {name}",
                        unit, higher)
                 for ch, (short, word) in enumerate((("amp", "amplitude"), ("phase", "phase"))))


CATALOGUE = {m.key: m for m in (
    *_pair("mae", "MAE", higher=False), *_pair("psnr", "PSNR", "dB"), *_pair("ssim", "SSIM"),
    *_pair("frc50", "FRC50", "cycles/pixel"),
    *(Metric(f"{short}_two_half_frc50", "two_half_frc", ("frc50", ch), f"{short} two-half FRC50",
             f"{word} two-half FRC50", "cycles/pixel")
      for ch, (short, word) in enumerate((("amp", "amplitude"), ("phase", "phase")))),
    Metric("neighbour_disagreement", "neighbour_disagreement", None, "neighbour disagreement",
           "neighbour phase disagreement", "rad", higher_is_better=False),
    Metric("phase_correlation", "phase_correlation", None, "phase corr", "phase correlation"),
    Metric("phase_strength_ratio", "phase_strength_ratio", None, "phase strength",
           "phase strength ratio"),
    Metric("data_residual", "data_residual", "amplitude_mae", "data residual",
           "data residual (amplitude MAE)", higher_is_better=False),
    Metric("train_time_s", "train_time_s", None, "train s", "training time", "s", False),
    Metric("inference_time_s", "inference_time_s", None, "inference s", "inference time", "s",
           False),
    Metric("total_time_s", "total_time_s", None, "total s", "total time", "s", False),
)}


def metrics(*keys: str) -> tuple[Metric, ...]:
    """The catalogue's entries of ``keys``, in that order."""
    return tuple(CATALOGUE[k] for k in keys)


__all__ = ["CATALOGUE", "CHANNELS", "METRIC_NAMES", "Metric", "metrics"]
