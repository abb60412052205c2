"""Pseudobulk baseline: PCA of each set's mean log-normalised expression."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from gde.data._validation import check_set_column, get_data
from gde.tl._normalize import log_normalize


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
    labels = pd.Categorical(adata.obs[set_key]).remove_unused_categories()
    codes = np.asarray(labels.codes)
    n_sets = len(labels.categories)
    logx = log_normalize(x, target_sum=target_sum)
    member = sparse.csr_matrix(
        (np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n_sets, len(codes))
    )
    counts = np.asarray(member.sum(axis=1)).ravel()
    sums = member @ logx
    sums = sums.toarray() if sparse.issparse(sums) else np.asarray(sums)
    means = sums / counts[:, None]
    centred = means - means.mean(axis=0)
    k = int(min(n_comps, max(1, n_sets - 1), centred.shape[1]))
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    z = u[:, :k] * s[:k]
    index = pd.Index(labels.categories.astype(str), name=set_key)
    emb = pd.DataFrame(z, index=index, columns=[f"pb_{i}" for i in range(k)])
    if key_added is not None:
        table = emb.copy()
        table.insert(0, "n_cells", counts.astype(int))
        adata.uns[key_added] = {
            "table": table,
            "params": {"set_key": set_key, "n_comps": k, "target_sum": target_sum},
        }
        adata.obsm[key_added] = z[codes].astype(np.float32)
    return adata if copy else emb
