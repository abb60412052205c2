"""Cells generated along an interpolation, on a PCA of the real cells."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.colors import Normalize

from gde._anndata_utils import check_set_column, comparison_layer, get_data, log_normalize
from gde._pca import pca, project

from ._utils import finish, new_axes, scatter_categories


def _check_path(path: AnnData, color: str) -> None:
    for column in ("point", color):
        if column not in path.obs.columns:
            raise KeyError(
                f"path.obs['{column}'] is missing. Pass the AnnData returned by "
                "`model.interpolate(set_a, set_b)`."
            )


def _real_mask(adata: AnnData, real_sets: Sequence[str] | None, set_key: str | None) -> np.ndarray:
    """Which real cells to draw (all unless ``real_sets`` names some)."""
    if real_sets is None:
        return np.ones(adata.n_obs, dtype=bool)
    if set_key is None:
        raise ValueError("`real_sets` needs `set_key`, the obs column naming each cell's set.")
    check_set_column(adata, set_key)
    labels = adata.obs[set_key].astype(str)
    wanted = [str(s) for s in ([real_sets] if isinstance(real_sets, str) else real_sets)]
    absent = sorted(set(wanted).difference(labels))
    if absent:
        raise KeyError(f"Sets {absent} are not in adata.obs['{set_key}'].")
    return labels.isin(wanted).to_numpy()


def _endpoints(path: AnnData) -> tuple[str, str] | None:
    """The two sets of the path, as recorded by :meth:`gde.GDEModel.interpolate`."""
    info = path.uns.get("interpolation")
    if not isinstance(info, dict) or "set_a" not in info or "set_b" not in info:
        return None
    return str(info["set_a"]), str(info["set_b"])


def _coordinates(adata, x_real, x_gen, mask, basis) -> tuple[np.ndarray, np.ndarray]:
    """2-D coordinates of the real (masked) and of the generated cells."""
    if basis == "pca":
        mean, loadings = pca(x_real[mask], 2, flip_signs=True)
        return project(x_real[mask], mean, loadings), project(x_gen, mean, loadings)
    coords = np.asarray(adata.obsm[basis])[:, :2]
    loadings = np.asarray(adata.varm["PCs"])[:, :2]
    # the stored coordinates are centred on the mean of the data they were fitted on
    offset = (np.asarray(x_real @ loadings) - coords).mean(axis=0)
    return coords[mask], np.asarray(x_gen @ loadings) - offset


def _label_ends(ax: Axes, start: np.ndarray, end: np.ndarray, texts) -> None:
    """Label both ends of the path outside it, so that close ends do not overlap."""
    sx = 1.0 if end[0] >= start[0] else -1.0
    sy = 1.0 if end[1] >= start[1] else -1.0
    for xy, text, sign in ((start, texts[0], -1.0), (end, texts[1], 1.0)):
        ax.annotate(
            text,
            xy,
            textcoords="offset points",
            xytext=(8 * sign * sx, 8 * sign * sy),
            ha="left" if sign * sx > 0 else "right",
            va="bottom" if sign * sy > 0 else "top",
            fontsize="small",
        )


def interpolation(
    adata: AnnData,
    path: AnnData,
    *,
    layer: str | None = None,
    basis: str = "pca",
    color: str = "weight",
    real_sets: Sequence[str] | None = None,
    set_key: str | None = None,
    normalize: bool | None = None,
    target_sum: float = 1e4,
    cmap: str = "coolwarm",
    size: float = 10.0,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | None = None,
) -> Axes:
    """Generated cells of an interpolation on the principal components of real cells.

    Real cells are drawn in grey; generated cells are projected onto the same
    components and coloured by ``color`` (by default the weight of the second set); the
    mean of each point is joined by a line.

    Parameters
    ----------
    adata
        Real cells × genes, the data the model was trained on.
    path
        The AnnData returned by :meth:`gde.GDEModel.interpolate`, with ``obs['point']``
        and ``obs['weight']``.
    layer
        Layer of ``adata`` with the counts (or features); ``None`` uses ``adata.X``.
    basis
        ``"pca"``: principal components of the real cells (those of ``real_sets``),
        computed here. Otherwise a key of ``adata.obsm`` with a PCA of all real cells,
        its loadings in ``adata.varm['PCs']`` as written by :func:`scanpy.pp.pca`; it
        must be a PCA of the values as normalised here, over the model's genes.
    color
        Numeric or categorical column of ``path.obs`` colouring the generated cells.
    real_sets
        Draw (and, for ``basis="pca"``, fit the components on) the cells of these
        sets only.
    set_key
        Column of ``adata.obs`` naming each cell's set; needed with ``real_sets``.
    normalize
        ``log1p`` of values scaled to ``target_sum`` per cell (``True``), values as
        they are (``False``), or (``None``) log-normalise counts and compare continuous
        values as they are, refusing to compare counts with continuous values (see
        :func:`gde.tl.generated_vs_real`).
    target_sum
        Counts per cell after scaling.
    cmap
        Colormap of a numeric ``color``.
    size
        Marker size of the generated cells (real cells: a third of it).
    ax
        Axes to draw on; a new figure by default.
    show
        Show the figure (default: when no ``ax`` is given, not saving, and matplotlib
        is in interactive mode).
    save
        Write the figure to this path.

    Returns
    -------
    The Axes.
    """
    _check_path(path, color)
    col = adata.var_names.get_indexer(path.var_names)
    if (col < 0).any():
        raise ValueError(
            f"{int((col < 0).sum())} genes of path are not in adata.var_names; pass the "
            "AnnData the model was trained on."
        )
    if basis != "pca":
        if basis not in adata.obsm:
            raise KeyError(
                f"basis '{basis}' is neither 'pca' nor a key of adata.obsm (available: "
                f"{list(adata.obsm) or 'none'}). Run `sc.pp.pca(adata)` or use basis='pca'."
            )
        if "PCs" not in adata.varm:
            raise KeyError(
                f"basis '{basis}' needs the loadings in adata.varm['PCs'], as written by "
                "`sc.pp.pca(adata)`; or use basis='pca'."
            )
        if len(col) != adata.n_vars or len(set(col)) != len(col):
            raise ValueError(
                f"basis '{basis}' projects over all genes of adata, but path has "
                f"{path.n_vars} of its {adata.n_vars}; use basis='pca'."
            )
    mask = _real_mask(adata, real_sets, set_key)
    layer, normalize = comparison_layer(adata, path, layer, normalize)
    x_real = get_data(adata, layer=layer)
    if basis == "pca":
        x_real = x_real[:, col]
        x_gen = path.X
    else:  # all genes in adata's order
        x_gen = path.X[:, path.var_names.get_indexer(adata.var_names)]
    x_real = log_normalize(x_real, target_sum, normalize)
    x_gen = log_normalize(x_gen, target_sum, normalize)
    real_xy, gen_xy = _coordinates(adata, x_real, x_gen, mask, basis)

    ax, created = new_axes(ax, (5.0, 4.0))
    ax.scatter(
        real_xy[:, 0],
        real_xy[:, 1],
        s=size / 3,
        color="lightgrey",
        rasterized=True,
        label="real cells",
        zorder=1,
    )
    values = path.obs[color]
    steps = path.obs["point"].to_numpy()
    order = np.unique(steps)
    means = np.stack([gen_xy[steps == k].mean(axis=0) for k in order])
    ends = _endpoints(path)
    if pd.api.types.is_numeric_dtype(values):
        norm = Normalize(*np.nanpercentile(values.to_numpy(dtype=float), [0, 100]))
        points = ax.scatter(
            gen_xy[:, 0],
            gen_xy[:, 1],
            c=values.to_numpy(dtype=float),
            cmap=cmap,
            norm=norm,
            s=size,
            alpha=0.8,
            linewidths=0,
            zorder=2,
        )
        bar = plt.colorbar(points, ax=ax)
        bar.set_label(
            f"weight (0: {ends[0]}, 1: {ends[1]})" if ends and color == "weight" else color
        )
    else:
        scatter_categories(
            ax, gen_xy, values, path, color, s=size, alpha=0.8, linewidths=0, zorder=2
        )
    ax.plot(
        means[:, 0],
        means[:, 1],
        "-o",
        color="black",
        markerfacecolor="white",
        markersize=5,
        linewidth=1.5,
        zorder=3,
    )
    _label_ends(ax, means[0], means[-1], ends or ("start", "end"))
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(" → ".join(ends) if ends else "interpolation")
    finish(ax.figure, show=show, save=save, created=created)
    return ax
