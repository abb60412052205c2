"""Exact 2-Wasserstein distances between the sets' cells: what a set embedding approximates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from gde._anndata_utils import check_set_column, group_cells_by_set, to_dense
from gde._ot import exact_w2_matrix


def wasserstein_distances(
    adata: AnnData,
    *,
    set_key: str,
    use_rep: str = "X_pca",
    n_cells: int | None = 500,
    sets: Sequence[str] | None = None,
    seed: int = 0,
    key_added: str | None = "wasserstein",
) -> pd.DataFrame:
    """Exact W2 between the cells of every pair of sets, in a cell-level representation.

    Each set is the uniform distribution over its cells (at most ``n_cells`` of them,
    drawn without replacement); the optimal transport between two sets is solved exactly
    (:func:`gde.metrics.exact_w2`) with squared Euclidean costs. This is the
    geometry a GDE embedding is trained to follow, so
    ``gde.metrics.distance_spearman(model.get_distribution_embeddings(), w2)`` says how
    closely it does. With ``k`` sets it solves ``k (k - 1) / 2`` transport problems of
    ``n_cells × n_cells``: about a minute for 60 sets of 500 cells on one CPU core.

    Parameters
    ----------
    adata
        Cells, with the representation in ``adata.obsm[use_rep]`` (e.g. ``"X_pca"`` from
        :func:`scanpy.pp.pca` of log-normalised expression) or ``adata.X`` (``"X"``).
    set_key
        Column of ``adata.obs`` naming each cell's set.
    use_rep
        Key of ``adata.obsm``, or ``"X"``.
    n_cells
        Cells drawn from each larger set; ``None`` uses all cells. The plug-in W2 of
        ``n`` drawn cells overestimates the W2 between the populations by a bias that
        shrinks with ``n``.
    sets
        Names of the sets to compare; all sets by default.
    seed
        Seed of the draws.
    key_added
        Write ``{"distances": table, "params": {...}}`` to ``adata.uns[key_added]``;
        ``None`` writes nothing.

    Returns
    -------
    Set × set W2 distances (in the units of ``use_rep``), indexed by set name.
    """
    check_set_column(adata, set_key)
    if use_rep == "X":
        x = adata.X
    elif use_rep in adata.obsm:
        x = adata.obsm[use_rep]
    else:
        raise KeyError(
            f"adata.obsm['{use_rep}'] is missing (available: {list(adata.obsm) or 'none'}). "
            "Compute a representation first, e.g. `sc.pp.normalize_total(adata); "
            "sc.pp.log1p(adata); sc.pp.pca(adata)`, or pass `use_rep='X'`."
        )
    if n_cells is not None and n_cells < 1:
        raise ValueError(f"n_cells must be a positive number of cells or None, got {n_cells}.")
    x = to_dense(x.to_numpy() if isinstance(x, pd.DataFrame) else x)
    if not np.isfinite(x).all():
        raise ValueError(
            f"adata.{'X' if use_rep == 'X' else f'obsm[{use_rep!r}]'} has NaN or inf."
        )
    groups = group_cells_by_set(adata.obs[set_key])
    names = sorted(groups) if sets is None else [str(s) for s in sets]
    unknown = [s for s in names if s not in groups]
    if unknown:
        raise KeyError(f"Sets not found in adata.obs['{set_key}']: {unknown[:10]}.")
    rng = np.random.default_rng(seed)
    clouds = []
    for name in names:
        cells = groups[name]
        if n_cells is not None and len(cells) > n_cells:
            cells = rng.choice(cells, n_cells, replace=False)
        clouds.append(x[np.sort(cells)])
    index = pd.Index(names, name=set_key)
    table = pd.DataFrame(exact_w2_matrix(clouds), index=index, columns=index.copy())
    if key_added is not None:
        adata.uns[key_added] = {
            "distances": table,
            "params": {
                "set_key": set_key,
                "use_rep": use_rep,
                "n_cells": n_cells or 0,
                "seed": seed,
            },
        }
    return table
