"""Helpers shared by the plots: colours, categorical scatters, saving and showing."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

# qualitative palettes, one per annotation drawn side by side (few, then many categories)
_PALETTES = (("tab10", "Set2", "Dark2", "Set1", "Accent"), ("tab20", "tab20b", "tab20c"))


def category_colors(
    adata: AnnData, column: str | None, categories: Sequence, palette: int = 0
) -> list:
    """RGBA colour of each category: ``adata.uns[f"{column}_colors"]`` if it fits.

    Otherwise a qualitative palette; ``palette`` picks a different one for each of
    several annotations drawn together, so that their colours do not repeat.
    """
    stored = None if column is None else adata.uns.get(f"{column}_colors")
    if stored is not None and len(stored) == len(categories):
        return [to_rgba(c) for c in stored]
    names = _PALETTES[len(categories) > 8]
    cmap = plt.get_cmap(names[palette % len(names)])
    return [cmap(i % cmap.N) for i in range(len(categories))]


def describe_key(key: str) -> str:
    """A reader's name for an embedding or distance key: ``X_gde`` is "GDE embedding"."""
    name = key.removesuffix("_distances").removeprefix("X_")
    known = {"gde": "GDE embedding", "pseudobulk": "pseudobulk", "moments": "moments"}
    return known.get(name, name)


def scatter_categories(
    ax: Axes, xy: np.ndarray, values, adata: AnnData, column: str | None, **kwargs
) -> None:
    """Scatter ``xy`` ``(n, 2)`` one category of ``values`` at a time, with a legend.

    Colours as in :func:`category_colors` (``adata.uns[f"{column}_colors"]`` if it fits);
    the legend, right of the axes, lists every labelled artist of ``ax``. ``kwargs`` go
    to :meth:`matplotlib.axes.Axes.scatter`.
    """
    cats = pd.Categorical(values)
    colors = category_colors(adata, column, cats.categories)
    for c, name in enumerate(cats.categories):
        m = np.asarray(cats.codes == c)
        ax.scatter(xy[m, 0], xy[m, 1], color=colors[c], label=str(name), **kwargs)
    ax.legend(frameon=False, fontsize="small", bbox_to_anchor=(1.0, 1.0), loc="upper left")


def finish(fig: Figure, *, show: bool | None, save: str | None, created: bool) -> None:
    """Save the figure if asked; show it if asked, or by default for new figures.

    With ``show=None`` a figure is shown only when this plot created it, it is not being
    saved, and matplotlib is in interactive mode. ``show=False`` never shows.
    """
    if save:
        fig.savefig(save, bbox_inches="tight", dpi=150)
    if show or (show is None and created and not save and plt.isinteractive()):
        plt.show()


def new_axes(ax, figsize: tuple[float, float]):
    """``(ax, created)``: the given Axes, or those of a new figure."""
    if ax is not None:
        return ax, False
    _, ax = plt.subplots(figsize=figsize)
    return ax, True
