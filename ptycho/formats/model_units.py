"""The scan-scale rule: any scan brought to the units a trained model was trained in.

A model learned to map amplitudes at one level to objects: its training data were
amplitudes ``A = sqrt(counts) / s_train`` made by its probe ``P_model`` (``docs/design.md``,
"Physics conventions"). Every reader keeps a scan's patterns and its probe in the same
units (a counts file's probe is in photon units, an amplitude file's probe is that of its
amplitudes; ``ptycho.formats.raw_scan``), so the scan's own probe says how its units relate
to the model's. The rule (convention): the scan is divided by the one factor

    k = sqrt(sum |P_scan|^2 / sum |P_model|^2)        (sums over pixels and modes)

that brings its probe to the model probe's total intensity: counts are read as
``A = sqrt(counts) / k`` (float64 arithmetic, as the readers do), amplitudes as ``A / k``,
and the probe as ``P_scan / k``. The same scan in any layout (this project's amplitudes with
their scale, or counts) therefore reaches the model as the same amplitudes, and a scan at
another dose reaches it at the illumination it was trained at. The photon scale of the
result (``counts = (s A)^2``) is ``s = k`` for counts and ``s = s_file * k`` for amplitudes
whose file records ``s_file`` (this project's NPZ; else ``s_file = 1``).

Refused, in one line naming the file and key, when nothing relates the units:

- a probe with no intensity (:func:`scan_scale`);
- a probe not in its patterns' units (:func:`check_parseval`). By Parseval (unitary FFT)
  ``mean_patterns sum A^2 / sum |P|^2`` is the probe-weighted mean ``|O|^2`` of the scan's
  object, whatever ``k``; with the probe at the model's intensity the amplitude RMS over the
  training RMS is the square root of that over the training object's. Outside
  ``PARSEVAL_RANGE`` (a factor 100 in intensity either way) no transmission object explains
  it: the file's probe and patterns are in different units, or the unit rule misread them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ptycho.dataset import PtychoDataset
from ptycho.formats import check_cxi_sign, detect_format, read_scan
from ptycho.formats.checks import fail
from ptycho.formats.readers import read_dataset

__all__ = ["PARSEVAL_RANGE", "ScanScale", "check_parseval", "read_in_model_units",
           "scan_scale", "total_intensity"]

#: Accepted amplitude-RMS ratio to the training data, with the probe at the model's intensity.
PARSEVAL_RANGE = (0.1, 10.0)


@dataclass(frozen=True)
class ScanScale:
    """What the rule applied: ``photon_scale`` s (``counts = (s A)^2`` of the amplitudes the
    model is given), ``relative`` k (the file's amplitudes as read, and its probe, over the
    model's), ``source`` (the rule and its numbers, one line); the keys and unit name the
    file's patterns and probe in refusals."""

    photon_scale: float
    relative: float
    source: str
    unit: str
    pattern_key: str
    probe_key: str

    def to_dict(self) -> dict:
        return {"value": self.photon_scale, "relative": self.relative, "source": self.source}


def total_intensity(probe: np.ndarray) -> float:
    """``sum |P|^2`` over every pixel and mode (float64)."""
    return float(np.sum(np.abs(np.asarray(probe).astype(np.complex128)) ** 2))


def scan_scale(path: str, key: str, probe: np.ndarray, model_probe: np.ndarray) -> float:
    """``k = sqrt(sum |probe|^2 / sum |model_probe|^2)``; a probe without intensity is refused."""
    have, want = total_intensity(probe), total_intensity(model_probe)
    if not (math.isfinite(have) and have > 0):
        raise fail(path, key, f"has total intensity {have!r}",
                   "a probe with intensity, in the patterns' units: it relates them to the "
                   "model's units, docs/reference/formats.md")
    return math.sqrt(have / want)


def read_in_model_units(path: str, model_probe: np.ndarray, *, gridsize: int = 1,
                        unit: str = "auto", cxi_translation_sign: int = 1
                        ) -> tuple[PtychoDataset, ScanScale]:
    """Any supported scan as a dataset in the model's units (module docstring), and the
    scale applied; ``metadata['scan_scale']`` and ``metadata['normalisation']`` say which."""
    path = str(path)
    fmt = detect_format(path)
    if fmt == "project_npz":
        data = read_dataset(path, gridsize=gridsize, unit=unit,
                            cxi_translation_sign=cxi_translation_sign)
        k = scan_scale(path, "probeGuess", data.probe, model_probe)
        keys, what = ("diffraction", "probeGuess"), "amplitude"
    else:
        check_cxi_sign(path, fmt, cxi_translation_sign)
        raw = read_scan(path, unit=unit, cxi_translation_sign=cxi_translation_sign)
        k = scan_scale(path, raw.key("probe"), raw.require_probe(), model_probe)
        keys, what = (raw.key("patterns"), raw.key("probe")), raw.unit
        data = raw.to_dataset(gridsize=gridsize, photon_scale=k if what == "counts" else None)
    if what != "counts":
        data = _divided(data, k)
    s = float(data.metadata.get("scale", 1.0)) * (k if what != "counts" else 1.0)
    ratio = f"sum|P_scan|^2 / sum|P_model|^2 = {k * k:.6g}"
    if what == "counts":
        source = (f"counts: amplitude = sqrt(counts) / s, probe / s, s = sqrt({ratio}) = "
                  f"{k:.6g} (the scan's probe at the model's total intensity)")
    else:
        source = (f"amplitudes: amplitude / k, probe / k, k = sqrt({ratio}) = {k:.6g} (the "
                  f"scan's probe at the model's total intensity); photon scale s = {s:.6g}")
    scale = ScanScale(s, k, source, what, *keys)
    meta = dict(data.metadata, scale=s, scan_scale=scale.to_dict())
    meta["normalisation"] = "; ".join(x for x in (data.metadata.get("normalisation"),
                                                   f"scan scale: {source}") if x)
    return replace(data, metadata=meta), scale


def check_parseval(path: str, data: PtychoDataset, scale: ScanScale, training_rms: float
                   ) -> float:
    """The amplitude RMS of ``data`` (in the model's units) over ``training_rms``; refused
    outside :data:`PARSEVAL_RANGE` (module docstring)."""
    rms = float(np.sqrt(np.mean(np.square(data.diffraction, dtype=np.float64))))
    r = rms / float(training_rms)
    lo, hi = PARSEVAL_RANGE
    if not lo <= r <= hi:
        raise fail(path, scale.probe_key,
                   f"is not in the units of the patterns '{scale.pattern_key}' (read as "
                   f"{scale.unit}): with the probe at the model's total intensity their "
                   f"amplitude RMS is {r:.3g}x the training data's",
                   f"{lo:g}..{hi:g}, by Parseval an object like the training one's; check "
                   "--data-unit, or store the probe in the patterns' units")
    return r


def _divided(data: PtychoDataset, k: float) -> PtychoDataset:
    """Amplitudes and probe divided by ``k`` (float64 arithmetic; unchanged when k = 1)."""
    if k == 1.0:
        return data
    return replace(data,
                   diffraction=(data.diffraction.astype(np.float64) / k).astype(np.float32),
                   probe=(data.probe.astype(np.complex128) / k).astype(np.complex64))
