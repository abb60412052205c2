"""Scatter of set embeddings."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes

from gde._anndata_utils import constant_columns
from gde._pca import pca, project

from ._utils import describe_key, finish, new_axes, scatter_categories


def _is_set_adata(adata: AnnData, key: str) -> bool:
    """Whether ``adata`` is a set AnnData (one observation per set) holding ``key``."""
    entry = adata.uns.get(key)
    if isinstance(entry, Mapping) and "table" in entry:
        return False
    return key in adata.obsm and (
        f"{key}_distances" in adata.obsp or "n_cells" in adata.obs.columns
    )


def _set_table(adata: AnnData, key: str) -> tuple[pd.DataFrame, dict]:
    if _is_set_adata(adata, key):
        z = np.asarray(adata.obsm[key], dtype=np.float64)
        table = pd.DataFrame(z, index=adata.obs_names.astype(str))
        return table, dict(adata.uns.get(key, {}).get("params", {}))
    if key not in adata.uns or "table" not in adata.uns[key]:
        raise KeyError(
            f"adata.uns['{key}'] holds no set embeddings and adata is no set AnnData. Run "
            "`model.get_distribution_embeddings(adata)` (or a `gde.tl` embedding) first, "
            "or pass the set AnnData of `model.get_set_adata()`."
        )
    entry = adata.uns[key]
    table = entry["table"]
    return table.drop(columns=["n_cells"], errors="ignore"), dict(entry.get("params", {}))


def set_level_values(adata: AnnData, set_key: str, column: str, sets: pd.Index) -> pd.Series:
    """Per-set value of an ``obs`` column that is constant within each set."""
    if column not in adata.obs.columns:
        raise KeyError(f"'{column}' is not a column of adata.obs.")
    codes, names = pd.factorize(adata.obs[set_key].astype(str).to_numpy())
    constant = constant_columns(adata.obs[[column]], codes)
    if column not in constant.columns:
        raise ValueError(
            f"adata.obs['{column}'] varies within sets; colour by a set-level column."
        )
    return constant[column].set_axis(pd.Index(names)).reindex(sets)


def set_embedding(
    adata: AnnData,
    *,
    key: str = "X_gde",
    color: str | pd.Series | None = None,
    components: tuple[int, int] = (1, 2),
    basis: str = "pca",
    size: float = 60.0,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | None = None,
    **kwargs,
) -> Axes:
    """Scatter plot of set embeddings, one point per set.

    Parameters
    ----------
    adata
        Either the cell AnnData with set embeddings in ``adata.uns[key]``, or the set
        AnnData of :meth:`gde.GDEModel.get_set_adata` (one observation per set,
        embeddings in ``adata.obsm[key]``).
    key
        Key of the embeddings (``key_added`` of the function that computed them).
    color
        An ``obs`` column (for cells: one constant within sets, such as donor,
        condition or batch), or a Series indexed by set name.
    components
        Which two components to plot (1-based).
    basis
        ``"pca"`` (principal components of the embeddings) or ``"raw"`` (the
        embedding's own coordinates).
    size
        Marker size.
    ax
        Axes to draw on; a new figure by default.
    show
        Show the figure (default: when no ``ax`` is given, not saving, and matplotlib
        is in interactive mode).
    save
        Write the figure to this path.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.scatter`.

    Returns
    -------
    The Axes.
    """
    table, params = _set_table(adata, key)
    z = table.to_numpy(dtype=np.float64)
    i, j = components[0] - 1, components[1] - 1
    if basis == "pca":
        coords = project(z, *pca(z, min(z.shape)))
        label = "PC"
    elif basis == "raw":
        coords, label = z, "dim "
    else:
        raise ValueError(f"basis must be 'pca' or 'raw', got {basis!r}.")
    if max(i, j) >= coords.shape[1]:
        raise ValueError(f"components {components} exceed the {coords.shape[1]} available.")
    values = None
    if isinstance(color, str) and _is_set_adata(adata, key):
        if color not in adata.obs.columns:
            raise KeyError(f"'{color}' is not a column of adata.obs.")
        values = adata.obs[color].set_axis(table.index)
    elif isinstance(color, str):
        set_key = params.get("set_key")
        if set_key is None:
            raise ValueError(f"adata.uns['{key}']['params'] does not name the set_key.")
        values = set_level_values(adata, set_key, color, table.index)
    elif color is not None:
        values = pd.Series(color)
        values = values.set_axis(values.index.astype(str)).reindex(table.index)
    ax, created = new_axes(ax, (4.5, 4))
    if values is None:
        ax.scatter(coords[:, i], coords[:, j], s=size, **kwargs)
    elif pd.api.types.is_numeric_dtype(values):
        sc = ax.scatter(coords[:, i], coords[:, j], c=values.to_numpy(), s=size, **kwargs)
        plt.colorbar(sc, ax=ax, label=str(values.name or ""))
    else:
        column = color if isinstance(color, str) else None
        scatter_categories(ax, coords[:, [i, j]], values, adata, column, s=size, **kwargs)
    ax.set_xlabel(f"{label}{components[0]}")
    ax.set_ylabel(f"{label}{components[1]}")
    title = f"{describe_key(key)}, {len(table)} sets"
    ax.set_title(title + (f": {color}" if isinstance(color, str) else ""))
    ax.set_xticks([])
    ax.set_yticks([])
    finish(ax.figure, show=show, save=save, created=created)
    return ax
