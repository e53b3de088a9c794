"""Reuse a finished row or compute it (ptycho_torch/studies/rows.py), the one rule of every study."""
import pytest

from ptycho.artifacts import StudyLayout, write_json_atomic
from ptycho.config.validation import StudyError
from ptycho.study_metrics import StudyMetrics
from ptycho_torch.studies.rows import metrics_row, reuse_or_compute


def _finish(layout: StudyLayout, key: dict, ssim: float) -> StudyMetrics:
    m = StudyMetrics(layout.model_id, "iterative", True, ssim=[ssim, ssim], compare_key=key)
    write_json_atomic(layout.metrics_path, m.to_json())
    return m


def test_a_finished_row_with_its_key_is_reused_else_computed(tmp_path):
    layout = StudyLayout(tmp_path, "ptychi_lsqml")
    key = {"engine": "lsqml", "epochs": 3, "data": {"N": 32}}
    computed = []

    def compute():
        computed.append(1)
        return _finish(layout, key, 0.5)
    first = reuse_or_compute(metrics_row(layout, key), compute, overwrite=False)
    again = reuse_or_compute(metrics_row(layout, {**key, "epochs": 3.0}), compute, overwrite=False)
    assert computed == [1] and again.ssim == first.ssim == [0.5, 0.5]
    reuse_or_compute(metrics_row(layout, key), compute, overwrite=True)
    assert computed == [1, 1]
    other = {**key, "epochs": 4}
    with pytest.raises(StudyError, match=r"^output_dir='.*' already holds a finished ptychi_lsqml "
                                         r"row with other settings \(.*metrics.json\); pass "
                                         "--overwrite"):
        reuse_or_compute(metrics_row(layout, other), compute, overwrite=False)
    # a derived row (refuse=False) with other settings is recomputed, not refused
    reuse_or_compute(metrics_row(layout, other), compute, overwrite=False, refuse=False)
    assert computed == [1, 1, 1]
    layout.metrics_path.write_text("{not json")   # a broken record is recomputed
    reuse_or_compute(metrics_row(layout, key), compute, overwrite=False)
    assert computed == [1, 1, 1, 1]


def test_rows_computed_together_are_reused_only_all_together(tmp_path):
    layouts = [StudyLayout(tmp_path, f"ptychi_epie{s}") for s in ("", "@heldout")]
    keys = [{"rule": "fixed"}, {"rule": "heldout"}]
    runs = []

    def compute():
        runs.append(1)
        return [_finish(lay, k, 0.1 * len(runs)) for lay, k in zip(layouts, keys)]
    wanted = [metrics_row(lay, k) for lay, k in zip(layouts, keys)]
    assert [m.ssim[0] for m in reuse_or_compute(wanted, compute, overwrite=False)] == [0.1, 0.1]
    assert [m.ssim[0] for m in reuse_or_compute(wanted, compute, overwrite=False)] == [0.1, 0.1]
    layouts[1].metrics_path.unlink()    # one row missing: the run gives both again
    assert [m.ssim[0] for m in reuse_or_compute(wanted, compute, overwrite=False)] == [0.2, 0.2]
    assert runs == [1, 1]
