"""The book's one figure style, and a check that every figure is labelled.

Usage in a chapter::

    from sulib.plotting import finish, use_book_style
    use_book_style()
    fig, ax = plt.subplots()
    ...
    finish(fig)

Figures have an opaque white background, so they stay legible in the book's dark mode, and
cycle through the Okabe–Ito palette (distinguishable with the common colour-vision deficiencies).
"""

from __future__ import annotations

import matplotlib as mpl
from cycler import cycler
from matplotlib.figure import Figure

__all__ = ["OKABE_ITO", "BOOK_STYLE", "use_book_style", "finish"]

#: Okabe & Ito (2008) colour-blind-safe palette, black first omitted (black is kept for references).
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")

#: rcParams of the book's figures (PNG, drawn at 2x for sharp text on high-DPI screens).
BOOK_STYLE = {
    "figure.figsize": (8.0, 4.5),
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.transparent": False,
    "font.size": 12,
    "axes.titlesize": 12,
    "axes.labelsize": 12,
    "legend.fontsize": 10,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "lines.linewidth": 1.8,
    "lines.markersize": 4,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=OKABE_ITO),
    "legend.frameon": False,
}


def use_book_style() -> None:
    """Apply :data:`BOOK_STYLE` to matplotlib (and sharp PNGs when running under IPython)."""
    mpl.rcParams.update(BOOK_STYLE)
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:  # figures are PNG (nbval skips PNG), rendered at 2x
            from matplotlib_inline.backend_inline import set_matplotlib_formats

            set_matplotlib_formats("retina")
    except ImportError:  # plain Python: nothing to configure
        pass


def _labelled(ax, axis: str) -> bool:
    """True if ``ax`` has a label on ``axis`` or shares it with an axes that has one."""
    label = getattr(ax, f"get_{axis}label")
    if label().strip():
        return True
    group = getattr(ax, f"get_shared_{axis}_axes")()
    return any(getattr(other, f"get_{axis}label")().strip() for other in group.get_siblings(ax))


def finish(fig: Figure) -> None:
    """Lay out ``fig`` and check that every visible axes has labelled x and y axes.

    A shared axis counts as labelled when one axes of its group carries the label (the usual
    grid of panels labels only the outer ones). Units go in the label, e.g. "entropy H (nats)".

    Raises:
        TypeError: if ``fig`` is not a matplotlib Figure.
        ValueError: naming the panel (by its title or index) that lacks a label.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    for k, ax in enumerate(fig.axes):
        if not ax.get_visible() or not ax.axison:
            continue
        name = repr(ax.get_title()) if ax.get_title() else f"axes {k}"
        if getattr(ax, "_colorbar", None) is not None:  # a colour bar needs one label, on its long axis
            if not (ax.get_xlabel().strip() or ax.get_ylabel().strip()):
                raise ValueError(f"fig: the colour bar of {name} has no label")
            continue
        for axis in ("x", "y"):
            if not _labelled(ax, axis):
                raise ValueError(f"fig: {name} has no {axis} label (say what is plotted, with units)")
    fig.tight_layout()
