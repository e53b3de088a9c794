"""The metric catalogue (ptycho/metric_catalogue.py): each metric once, every name of it
read from one entry, and each entry readable from a study row."""
import dataclasses

import numpy as np

from ptycho import evaluation, stitching, study_metrics
from ptycho.config import choices
from ptycho.metric_catalogue import CATALOGUE, METRIC_NAMES
from ptycho.study_metrics import StudyMetrics


def test_every_name_of_a_metric_is_unique():
    for attr in ("key", "header", "label"):
        names = [getattr(m, attr) for m in CATALOGUE.values()]
        assert len(set(names)) == len(names), attr
    assert all(k == m.key for k, m in CATALOGUE.items())


def test_every_entry_reads_a_study_row():
    rng = np.random.default_rng(0)
    gt = (1 + 0.2 * rng.random((48, 48))) * np.exp(1j * rng.random((48, 48)))
    row = StudyMetrics("pinn_x", "network", True, data_residual={"amplitude_mae": 0.25},
                       train_time_s=3.0, inference_time_s=1.0, total_time_s=4.0,
                       two_half_frc={"frc50": [0.21, 0.13], "frc50_censored": [None, None]},
                       neighbour_disagreement=0.09)
    pred = gt * np.exp(0.1j * rng.standard_normal(gt.shape)) + 0.05 * rng.standard_normal(gt.shape)
    row.set_scores(evaluation.evaluate_reconstruction(pred, gt))
    fields = {f.name for f in dataclasses.fields(StudyMetrics)}
    for m in CATALOGUE.values():
        assert m.record in fields, m.key
        if isinstance(m.channel, int):
            assert m.record in METRIC_NAMES
            assert np.isfinite(row.value(m.record, m.channel, censored_at_bound=True))
        elif isinstance(m.channel, tuple):   # (list name, channel) of a dict record
            name, channel = m.channel
            assert getattr(row, m.record)[name][channel] == [0.21, 0.13][channel], m.key
        else:
            v = getattr(row, m.record)
            v = v[m.channel] if isinstance(m.channel, str) else v
            assert isinstance(v, float), m.key


def test_names_that_were_defined_twice_are_defined_once():
    assert evaluation.METRIC_NAMES is study_metrics.METRIC_KEYS is METRIC_NAMES
    assert stitching.STITCH_MODES is choices.STITCH_MODES
    assert [c[0] for c in study_metrics.TABLE_COLUMNS] == [
        CATALOGUE[k].header for k in ("amp_mae", "phase_mae", "amp_psnr", "phase_psnr",
                                      "amp_ssim", "phase_ssim", "amp_frc50", "phase_frc50")]
