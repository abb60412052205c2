"""Per-clone pointwise mutual information on the set embedding."""

from __future__ import annotations

from anndata import AnnData
from matplotlib.axes import Axes

from ._sets import _is_set_adata, set_embedding
from ._utils import finish


def clone_information(
    adata: AnnData,
    *,
    key: str = "clone_information",
    time=None,
    use_rep: str | None = None,
    cmap: str = "viridis",
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | None = None,
    **kwargs,
) -> Axes:
    """The sets of one time point on their embedding, coloured by pointwise MI.

    Draws the result of :func:`gde.tl.clone_information`: each clone's set at ``time``
    (the early time point by default) on the principal components of its embedding,
    coloured by the clone's pointwise mutual information between its early and late
    embeddings (bits). Clones with high values are those whose early state says the
    most about their late state.

    Parameters
    ----------
    adata
        The set AnnData that :func:`gde.tl.clone_information` wrote to.
    key
        Its ``key_added``.
    time
        Time point to draw; the ``early`` one by default.
    use_rep
        Embedding to place the sets by; the one the estimate used by default.
    cmap
        Colour map.
    ax, show, save, **kwargs
        As in :func:`gde.pl.set_embedding`.

    Returns
    -------
    The Axes.
    """
    if key not in adata.uns or "pointwise" not in adata.uns[key]:
        raise KeyError(f"adata.uns['{key}'] is missing: run `gde.tl.clone_information` first.")
    info = adata.uns[key]
    params = info["params"]
    use_rep = use_rep or params["use_rep"]
    if not _is_set_adata(adata, use_rep):
        raise ValueError(
            "Pass the set AnnData (one row per clone × time set, from "
            "`model.get_set_adata()`) that `gde.tl.clone_information` wrote to."
        )
    time = params["early"] if time is None else str(time)
    rows = (adata.obs[params["time_key"]].astype(str) == time).to_numpy()
    if not rows.any():
        raise ValueError(f"No set at time point {time!r}.")
    sub = adata[rows]
    values = sub.obs[f"{key}_pointwise"].rename("pointwise MI (bits)")
    kept = values.notna().to_numpy()
    created = ax is None
    ax = set_embedding(
        sub[kept], key=use_rep, color=values[kept], cmap=cmap, ax=ax, show=False, **kwargs
    )
    ax.set_title(
        f"{time}: pointwise MI with {params['late']}\n"
        f"total {info['mi_bits']:.2f} bits, p = {info['p_value']:.3g}"
    )
    finish(ax.figure, show=show, save=save, created=created)
    return ax
