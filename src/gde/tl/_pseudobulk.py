"""Pseudobulk baseline: PCA of each set's mean log-normalised expression."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from gde._anndata_utils import (
    check_set_column,
    get_data,
    group_membership,
    log_normalize,
    set_codes,
    to_dense,
)
from gde._pca import pca, project


def pseudobulk_embedding(
    adata: AnnData,
    *,
    set_key: str,
    layer: str | None = None,
    n_comps: int = 50,
    target_sum: float = 1e4,
    key_added: str | None = "X_pseudobulk",
    copy: bool = False,
) -> pd.DataFrame | AnnData | None:
    """Embed each set by the PCA of its mean log-normalised expression.

    Counts are scaled to ``target_sum`` per cell and log1p-transformed; each set is the
    mean over its cells; the set means are centred and projected on their top principal
    components. This is the baseline a set embedding has to beat.

    Parameters
    ----------
    adata
        Cells × genes with raw counts in ``layer`` (or ``adata.X``).
    set_key
        Column of ``adata.obs`` naming each cell's set.
    layer
        Layer with the counts; ``None`` uses ``adata.X``.
    n_comps
        Number of principal components (at most ``n_sets - 1`` are kept).
    target_sum
        Counts per cell after scaling.
    key_added
        Write the per-set table to ``adata.uns[key_added]`` and each cell's set embedding
        to ``adata.obsm[key_added]``; ``None`` writes nothing.
    copy
        Return a modified copy of ``adata`` instead of writing in place.

    Returns
    -------
    The per-set embedding (``copy=False``), or the modified copy (``copy=True``).
    """
    check_set_column(adata, set_key)
    if copy:
        adata = adata.copy()
    x = get_data(adata, layer=layer)
    codes, names = set_codes(adata.obs[set_key])
    n_sets = len(names)
    logx = log_normalize(x, target_sum=target_sum)
    means = set_means(logx, codes, n_sets)
    params = {"set_key": set_key, "target_sum": target_sum}
    return set_mean_embedding(
        adata, means, codes, names, set_key, n_comps, "pb", key_added, params, copy
    )


def set_means(values, codes: np.ndarray, n_sets: int) -> np.ndarray:
    """Mean of the rows of ``values`` (dense or sparse) in each set, ``(n_sets, n_features)``.

    ``codes``: each row's set, ``0..n_sets-1`` (negative: in no set).
    """
    member = group_membership(codes, n_sets)
    counts = np.asarray(member.sum(axis=1)).ravel()
    return to_dense(member @ values) / np.maximum(counts, 1)[:, None]


def set_mean_embedding(
    adata: AnnData,
    means: np.ndarray,
    codes: np.ndarray,
    names: pd.Index,
    set_key: str,
    n_comps: int,
    prefix: str,
    key_added: str | None,
    params: dict,
    copy: bool,
) -> pd.DataFrame | AnnData:
    """PCA of per-set mean vectors, written like :func:`pseudobulk_embedding` writes it.

    ``means``: ``(n_sets, n_features)``, one row per name of ``names``; ``codes``: each
    row's set code; columns are named ``f"{prefix}_{i}"``.
    """
    n_sets = len(names)
    k = int(min(n_comps, max(1, n_sets - 1), means.shape[1]))
    # always numpy's SVD: the baseline's components do not depend on the data's size
    z = project(means, *pca(means, k, dense_limit=None))
    index = pd.Index(names, name=set_key)
    emb = pd.DataFrame(z, index=index, columns=[f"{prefix}_{i}" for i in range(k)])
    if key_added is not None:
        table = emb.copy()
        table.insert(0, "n_cells", np.bincount(codes, minlength=n_sets).astype(int))
        adata.uns[key_added] = {"table": table, "params": {**params, "n_comps": k}}
        adata.obsm[key_added] = z[codes].astype(np.float32)
    return adata if copy else emb
