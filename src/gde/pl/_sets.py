"""Scatter of set embeddings."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes


def _set_table(adata: AnnData, key: str) -> tuple[pd.DataFrame, dict]:
    if key not in adata.uns or "table" not in adata.uns[key]:
        raise KeyError(
            f"adata.uns['{key}'] holds no set embeddings. Run "
            "`model.get_distribution_embeddings(adata)` (or a `gde.tl` embedding) first."
        )
    entry = adata.uns[key]
    table = entry["table"]
    return table.drop(columns=["n_cells"], errors="ignore"), dict(entry.get("params", {}))


def set_level_values(adata: AnnData, set_key: str, column: str, sets: pd.Index) -> pd.Series:
    """Per-set value of an ``obs`` column that is constant within each set."""
    if column not in adata.obs.columns:
        raise KeyError(f"'{column}' is not a column of adata.obs.")
    labels = adata.obs[set_key].astype(str)
    grouped = adata.obs[column].groupby(labels, observed=True)
    if (grouped.nunique(dropna=False) > 1).any():
        raise ValueError(
            f"adata.obs['{column}'] varies within sets; colour by a set-level column."
        )
    return grouped.first().reindex(sets)


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
        AnnData with set embeddings in ``adata.uns[key]``.
    key
        Key of the embeddings (``key_added`` of the function that computed them).
    color
        An ``obs`` column constant within sets (donor, condition, batch), or a Series
        indexed by set name.
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
        Show the figure (default: when no ``ax`` is given and not saving).
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
        centred = z - z.mean(axis=0)
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        coords = u * s
        label = "PC"
    elif basis == "raw":
        coords, label = z, "dim "
    else:
        raise ValueError(f"basis must be 'pca' or 'raw', got {basis!r}.")
    if max(i, j) >= coords.shape[1]:
        raise ValueError(f"components {components} exceed the {coords.shape[1]} available.")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4))
    values = None
    if isinstance(color, str):
        set_key = params.get("set_key")
        if set_key is None:
            raise ValueError(f"adata.uns['{key}']['params'] does not name the set_key.")
        values = set_level_values(adata, set_key, color, table.index)
    elif color is not None:
        values = pd.Series(color).reindex(table.index)
    if values is None:
        ax.scatter(coords[:, i], coords[:, j], s=size, **kwargs)
    elif pd.api.types.is_numeric_dtype(values):
        sc = ax.scatter(coords[:, i], coords[:, j], c=values.to_numpy(), s=size, **kwargs)
        plt.colorbar(sc, ax=ax, label=str(values.name or ""))
    else:
        cats = pd.Categorical(values)
        cmap = plt.get_cmap("tab20" if len(cats.categories) > 10 else "tab10")
        for c, name in enumerate(cats.categories):
            m = np.asarray(cats.codes == c)
            ax.scatter(
                coords[m, i],
                coords[m, j],
                s=size,
                color=cmap(c % cmap.N),
                label=str(name),
                **kwargs,
            )
        ax.legend(frameon=False, fontsize="small", bbox_to_anchor=(1.0, 1.0), loc="upper left")
    ax.set_xlabel(f"{label}{components[0]}")
    ax.set_ylabel(f"{label}{components[1]}")
    ax.set_title(f"{key} ({len(table)} sets)" + (f": {color}" if isinstance(color, str) else ""))
    ax.set_xticks([])
    ax.set_yticks([])
    if save:
        ax.figure.savefig(save, bbox_inches="tight", dpi=150)
    if show or (show is None and save is None and ax is not None and plt.isinteractive()):
        plt.show()
    return ax
