"""Clustered heatmap of the distances between sets."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import offset_copy
from mpl_toolkits.axes_grid1 import make_axes_locatable

from gde._set_distances import cluster_sets, distance_matrix

from ._utils import category_colors, describe_key, finish, new_axes

_MAX_LABELLED = 60


def _leaf_order(set_adata: AnnData, d: np.ndarray, distances_key: str, key: str | None):
    """Row positions in dendrogram order, from ``set_adata.uns`` or computed on the fly."""
    if key is None:
        default = f"dendrogram_{distances_key}"
        if default not in set_adata.uns:
            return cluster_sets(d)[1]
        key = default
    if key not in set_adata.uns or "order" not in set_adata.uns[key]:
        raise KeyError(
            f"sets.uns['{key}'] holds no dendrogram. Run "
            f"`gde.tl.set_dendrogram(set_adata, distances_key='{distances_key}')` first."
        )
    order = [str(s) for s in set_adata.uns[key]["order"]]
    pos = set_adata.obs_names.astype(str).get_indexer(order)
    if len(order) != set_adata.n_obs or (pos < 0).any() or len(set(pos)) != len(pos):
        raise ValueError(
            f"set_adata.uns['{key}']['order'] does not match set_adata.obs_names; rerun "
            "`gde.tl.set_dendrogram`."
        )
    return pos


def _patch(colour, label: str) -> Patch:
    """Legend swatch, outlined so that white stays visible."""
    return Patch(facecolor=colour, edgecolor="0.6", linewidth=0.5, label=label)


def _annotation(set_adata: AnnData, column: str, order: np.ndarray, palette: int = 0):
    """RGBA strip (1, n_sets, 4) of an obs column and its legend handles."""
    if column not in set_adata.obs.columns:
        raise KeyError(f"'{column}' is not a column of set_adata.obs.")
    values = set_adata.obs[column].iloc[order]
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        v = values.to_numpy(dtype=np.float64)
        lo, hi = np.nanmin(v), np.nanmax(v)
        cmap = plt.get_cmap("Greys")
        rgba = cmap((v - lo) / (hi - lo) if hi > lo else np.full_like(v, 0.5))
        handles = [
            _patch(cmap(0.0 if hi > lo else 0.5), f"{lo:.3g}"),
            _patch(cmap(1.0 if hi > lo else 0.5), f"{hi:.3g}"),
        ]
        return rgba[None], handles
    cats = pd.Categorical(values)
    colors = category_colors(set_adata, column, cats.categories, palette)
    colors = np.array([*colors, (1, 1, 1, 0)])
    rgba = colors[np.asarray(cats.codes)]  # code -1 (missing) takes the transparent last row
    handles = [_patch(colors[i], str(c)) for i, c in enumerate(cats.categories)]
    return rgba[None], handles


def distance_heatmap(
    set_adata: AnnData,
    *,
    distances_key: str = "X_gde_distances",
    color: str | Sequence[str] | None = None,
    dendrogram_key: str | None = None,
    cmap: str = "viridis",
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | None = None,
    **kwargs,
) -> Axes:
    """Heatmap of set × set distances, rows and columns in dendrogram order.

    Parameters
    ----------
    set_adata
        Set AnnData, one observation per set, with distances in ``set_adata.obsp``.
    distances_key
        Key of ``set_adata.obsp`` with the distances (see :func:`gde.tl.set_distances`).
    color
        ``obs`` column(s) drawn as coloured strips above the heatmap, each with its own
        palette (``set_adata.uns[f"{column}_colors"]`` where it fits, as in scanpy) and
        its own section of the legend.
    dendrogram_key
        Key of ``set_adata.uns`` written by :func:`gde.tl.set_dendrogram`. By default
        ``f"dendrogram_{distances_key}"`` if present, else an average-linkage clustering
        computed here (``sets`` is not modified).
    cmap
        Colormap of the distances.
    ax
        Axes to draw the heatmap on; a new figure by default. Strips and colorbar are
        appended next to it.
    show
        Show the figure (default: when no ``ax`` is given, not saving, and matplotlib
        is in interactive mode).
    save
        Write the figure to this path.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.imshow` (e.g. ``vmin``, ``vmax``).

    Returns
    -------
    The Axes of the heatmap.
    """
    d = distance_matrix(set_adata, distances_key)
    order = _leaf_order(set_adata, d, distances_key, dendrogram_key)
    columns = [color] if isinstance(color, str) else list(color or [])
    strips = [(c, *_annotation(set_adata, c, order, i)) for i, c in enumerate(columns)]
    names = set_adata.obs_names.astype(str)[order]
    n = len(names)

    ax, created = new_axes(ax, (6.0, 5.0))
    im = ax.imshow(d[np.ix_(order, order)], cmap=cmap, aspect="auto", **kwargs)
    if n <= _MAX_LABELLED:
        fontsize = min(9.0, max(4.0, 300.0 / max(n, 1)))
        ax.set_xticks(np.arange(n), names, rotation=90, fontsize=fontsize)
        ax.set_yticks(np.arange(n), names, fontsize=fontsize)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{n} sets")
    divider = make_axes_locatable(ax)
    cax = divider.append_axes("right", size=0.15, pad=0.1)
    ax.figure.colorbar(im, cax=cax, label="latent distance")
    top = ax
    handles: list = []
    headers: list[int] = []
    for column, rgba, column_handles in strips:
        strip = divider.append_axes("top", size=0.15, pad=0.04, sharex=ax)
        strip.imshow(rgba, aspect="auto", interpolation="nearest")
        strip.tick_params(bottom=False, labelbottom=False, left=False, labelleft=False)
        strip.set_ylabel(column, rotation=0, ha="right", va="center", fontsize="small")
        top = strip
        headers.append(len(handles))
        handles += [Line2D([], [], linestyle="none", label=column), *column_handles]
    if handles:
        # right of the colorbar, clear of its tick labels and label
        legend = ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            bbox_transform=offset_copy(cax.transAxes, fig=ax.figure, x=50, units="points"),
            borderaxespad=0.0,
            frameon=False,
            fontsize="small",
            handlelength=1.0,
        )
        for i in headers:
            legend.get_texts()[i].set_fontweight("bold")
    title = f"{describe_key(distances_key)}: distances between {n} sets"
    top.set_title(title + (f", by {', '.join(columns)}" if columns else ""))
    finish(ax.figure, show=show, save=save, created=created)
    return ax
