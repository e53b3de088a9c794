"""One image panel of a figure (the image without ticks, its title, a scale bar) and the
names the figures give their rows.

The scale bar (matplotlib's ``AnchoredSizeBar``) is about a fifth of the image wide, a round
number of object pixels, or of nm / µm when the pixel size is known (a file's geometry,
``metadata["geometry"]["object_pixel_m_yx"]``: :func:`object_pixel_m`). matplotlib is
imported inside the functions (Agg backend) so ``import ptycho`` stays fast.
"""
from __future__ import annotations

import math

# the Pty-chi engines as a figure names them (ptycho_torch.ptychi.ENGINES)
ENGINE_LABELS = {"lsqml": "LSQML", "lsqml-poisson": "LSQML (Poisson)", "epie": "ePIE"}


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def method_label(name: str) -> str:
    """A row's name in a figure from a method id: ``pinn_hybrid`` -> ``PINN (hybrid)``,
    ``ptychi_lsqml`` -> ``LSQML``, ``pinn_fno+lsqml`` -> ``PINN (fno) + LSQML``; a selection
    rule ``@rule`` is kept (``PINN (fno) @bestval``); any other name as it is."""
    base, at, rule = str(name).partition("@")

    def one(part: str) -> str:
        if part.startswith("pinn_"):
            return f"PINN ({part[len('pinn_'):]})"
        part = part[len("ptychi_"):] if part.startswith("ptychi_") else part
        return ENGINE_LABELS.get(part, part)
    label = " + ".join(one(p) for p in base.split("+"))
    return f"{label} @{rule}" if at else label


def object_pixel_m(metadata: dict | None) -> float | None:
    """The object pixel's width in metres from a scan's metadata (a file's geometry), or
    None where the scan does not give one (simulated scans: figures are in pixels)."""
    yx = ((metadata or {}).get("geometry") or {}).get("object_pixel_m_yx")
    if yx is None:
        return None
    try:
        width = float(yx[1])
    except (TypeError, ValueError, IndexError):
        return None
    return width if math.isfinite(width) and width > 0 else None


def _round_down(value: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above ``value`` (> 0)."""
    k = math.floor(math.log10(value))
    return next(m * 10.0 ** k for m in (5, 2, 1) if m * 10.0 ** k <= value * (1 + 1e-12))


def scale_bar_length(width_px: float, pixel_size_m: float | None = None) -> tuple[float, str]:
    """``(length in pixels, label)`` of a scale bar about a fifth of an image ``width_px``
    wide: a round number of pixels, or of nm / µm with ``pixel_size_m``."""
    if not pixel_size_m:
        n = max(1.0, _round_down(width_px / 5))
        return n, f"{n:g} px"
    length = _round_down(width_px * pixel_size_m / 5)
    label = f"{length * 1e9:.3g} nm" if length < 1e-6 else f"{length * 1e6:.3g} µm"
    return length / pixel_size_m, label


def add_scale_bar(ax, width_px: float, pixel_size_m: float | None = None):
    """A scale bar (:func:`scale_bar_length`) in the lower right corner of ``ax``."""
    from matplotlib.font_manager import FontProperties
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
    length, label = scale_bar_length(width_px, pixel_size_m)
    bar = AnchoredSizeBar(ax.transData, length, label, loc="lower right", pad=0.25,
                          borderpad=0.3, sep=2, frameon=True, color="black",
                          size_vertical=max(width_px / 120, 0.4),
                          fontproperties=FontProperties(size=7))
    bar.patch.set_alpha(0.7)
    ax.add_artist(bar)
    return bar


def image_panel(fig, ax, img, title: str, cmap: str, lo=None, hi=None, *,
                pixel_size_m: float | None = None, colorbar: bool = True):
    """``img`` in ``ax``: no ticks, ``title``, a scale bar, and a colour bar."""
    im = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    add_scale_bar(ax, img.shape[-1], pixel_size_m)
    if colorbar:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    return im


def row_label(ax, label: str) -> None:
    """What a row of panels shows, left of its first panel."""
    ax.set_ylabel(label, fontsize=10, fontweight="bold")
