"""Figures a scientist can read: ground truth, reconstruction and error; FRC curves; metrics
against dose and against a training budget; the training snapshots. Every figure of the
project is drawn here.

Every image panel carries a scale bar (object pixels, or nm / µm where the scan's pixel size
is known), every row of panels says what it shows (``ground truth``, ``PINN (hybrid)``,
``LSQML``: :func:`method_label`), and no figure leaves an empty panel. matplotlib is imported
inside the functions (Agg backend) so ``import ptycho`` stays fast.

    panels.py   one image panel, its scale bar, the rows' names
    images.py   comparison, reconstruction, method-by-dose grid, snapshots
    curves.py   FRC, metrics against dose, learning curves
    files.py    a study's figures; several figures stacked into one PNG
    live.py     the live view of a scan being reconstructed
"""
from ptycho.plotting.curves import (
    budget_figure,
    distinct_colour,
    dose_curves_figure,
    frc_figure,
    save_learning_curve_figure,
    save_learning_curves_over_seeds,
)
from ptycho.plotting.files import save_stacked_figures, save_study_figures
from ptycho.plotting.images import (
    comparison_panels,
    image_grid_figure,
    reconstruction_figure,
    save_reconstruction_figure,
    save_snapshot_figure,
    snapshot_figure,
)
from ptycho.plotting.live import save_live_figure
from ptycho.plotting.panels import (
    _plt,
    add_scale_bar,
    image_panel,
    method_label,
    object_pixel_m,
    scale_bar_length,
)

__all__ = ["_plt", "add_scale_bar", "budget_figure", "comparison_panels", "distinct_colour",
           "dose_curves_figure", "frc_figure", "image_grid_figure", "image_panel",
           "method_label", "object_pixel_m", "reconstruction_figure", "save_learning_curve_figure",
           "save_learning_curves_over_seeds", "save_live_figure", "save_reconstruction_figure",
           "save_snapshot_figure", "save_stacked_figures", "save_study_figures",
           "scale_bar_length", "snapshot_figure"]
