"""The figures (ptycho.plotting), drawn on tiny arrays with the Agg backend: no axes without
content, a scale bar on every image, rows named by what they show; and no figure drawn
anywhere else."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg", force=True)
import matplotlib.pyplot as plt  # noqa: E402
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar  # noqa: E402

from ptycho import plotting  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(0)
AMP, PHASE = RNG.random((12, 12)), RNG.random((12, 12)) - 0.5


def _scale_bars(ax) -> list:
    return [a for a in ax.artists if isinstance(a, AnchoredSizeBar)]


def _check(fig) -> list:
    """Every axes of ``fig`` shows something; every image axes has one scale bar. Returns
    the image axes."""
    images = []
    for ax in fig.axes:
        assert (ax.images or ax.lines or ax.collections or ax.texts or ax.patches
                or ax.artists), f"empty axes titled {ax.get_title()!r}"
        if ax.images:
            assert len(_scale_bars(ax)) == 1, ax.get_title()
            images.append(ax)
    plt.close(fig)
    return images


def _row_labels(fig) -> list[str]:
    return [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]


def test_comparison_names_its_rows_and_has_no_empty_panel():
    fig = plotting.comparison_panels(AMP, PHASE, {"pinn_hybrid": (AMP, PHASE),
                                                  "ptychi_lsqml": (AMP * 0.9, PHASE)}, "t")
    assert _row_labels(fig) == ["ground truth", "PINN (hybrid)", "LSQML"]
    assert len(_check(fig)) == 2 + 2 * 4    # the truth: amplitude and phase; methods: 4 each


def test_reconstruction_grid_snapshot_and_curve_figures_have_no_empty_axes():
    assert len(_check(plotting.reconstruction_figure(AMP * np.exp(1j * PHASE), "t",
                                                     label="pinn_fno"))) == 2
    grid = plotting.image_grid_figure({("ground truth", "1e4"): PHASE, ("pinn_fno", "1e4"): PHASE,
                                       ("ground truth", "1e6"): PHASE},   # one cell missing
                                      ["ground truth", "pinn_fno"], ["1e4", "1e6"])
    assert _row_labels(grid) == ["ground truth", "PINN (fno)"]
    assert len(_check(grid)) == 3
    obj = (AMP * np.exp(1j * PHASE))[None].repeat(3, 0)
    snap = plotting.snapshot_figure(obj, (np.abs(obj), np.angle(obj)), "epoch 1",
                                    ["pattern 0", "pattern 5", "pattern 9"])
    assert _row_labels(snap) == ["pattern 0", "pattern 5", "pattern 9"]
    assert len(_check(snap)) == 12
    f = np.linspace(0, 0.5, 10)
    assert _check(plotting.frc_figure({"pinn_fno": (f, 1 - f, 1 - f)})) == []
    doses = [1e4, 1e5, 1e6]
    for n in (1, 2, 3):     # an odd count of panels leaves no axes behind
        fig = plotting.dose_curves_figure(doses, {f"panel {i}": {"a": [1, 2, 3]}
                                                  for i in range(n)})
        assert len(fig.axes) == n
        _check(fig)
    fig = plotting.budget_figure([1, 2, 4], [(f"m{i}", [("run", [0.1, 0.2, 0.3], None),
                                                        ("LSQML", 0.25), ("nan", math.nan)])
                                             for i in range(3)], "epochs", "t")
    assert len(fig.axes) == 3
    _check(fig)


def test_scale_bars_are_round_lengths_in_pixels_or_in_metres():
    # a fifth of the width, rounded down to 1, 2 or 5 x 10^k
    assert plotting.scale_bar_length(64) == (10.0, "10 px")
    assert plotting.scale_bar_length(12) == (2.0, "2 px")
    length, label = plotting.scale_bar_length(64, 1e-8)     # 640 nm wide: 100 nm = 10 px
    assert label == "100 nm" and length == pytest.approx(10.0)
    length, label = plotting.scale_bar_length(1000, 5e-9)   # 5 µm wide: 1 µm = 200 px
    assert label == "1 µm" and length == pytest.approx(200.0)
    fig = plotting.reconstruction_figure(np.ones((64, 64), np.complex64), pixel_size_m=1e-8)
    bars = [b for ax in fig.axes for b in _scale_bars(ax)]
    assert [b.txt_label.get_text() for b in bars] == ["100 nm", "100 nm"]
    plt.close(fig)
    assert plotting.object_pixel_m({"geometry": {"object_pixel_m_yx": [2e-8, 1e-8]}}) == 1e-8
    assert plotting.object_pixel_m({"geometry": {"object_pixel_m_yx": None}}) is None
    assert plotting.object_pixel_m({}) is None


@pytest.mark.parametrize("name, label", [
    ("pinn_hybrid", "PINN (hybrid)"), ("ptychi_lsqml", "LSQML"),
    ("ptychi_lsqml-poisson@heldout", "LSQML (Poisson) @heldout"),
    ("pinn_fno+lsqml", "PINN (fno) + LSQML"), ("reconstruction+lsqml", "reconstruction + LSQML"),
    ("ground truth", "ground truth")])
def test_rows_are_named_by_what_they_show(name, label):
    assert plotting.method_label(name) == label


def test_the_learning_curve_figures_are_written(tmp_path):
    result = {"model_id": "pinn_fno", "budget_unit": "epochs", "points": [
        {"budget": 1, "amp_ssim": 0.2}, {"budget": 2, "amp_ssim": 0.3}],
        "references": [{"model_id": "ptychi_lsqml", "amp_ssim": 0.5}],
        "machine": {"device": "cpu", "torch_threads": 1}}
    path = plotting.save_learning_curve_figure(tmp_path / "lc.png", result,
                                               [("amp_ssim", "amplitude SSIM")])
    assert path.is_file() and path.stat().st_size > 0
    summary = {"amp_ssim": {"mean": [0.2, 0.3], "min": [0.1, 0.2], "max": [0.3, None]}}
    path = plotting.save_learning_curves_over_seeds(tmp_path / "s.png", [1, 7], [1, 2],
                                                    "epochs", summary,
                                                    [("amp_ssim", "amplitude SSIM")])
    assert path.is_file() and path.stat().st_size > 0


def test_no_figure_is_drawn_outside_ptycho_plotting():
    drawing = [str(p.relative_to(REPO)) for top in ("ptycho", "ptycho_torch", "scripts")
               for p in (REPO / top).rglob("*.py")
               if "matplotlib" in p.read_text() and "plotting" not in p.relative_to(REPO).parts]
    assert drawing == []
