"""Distances between sets and their hierarchical clustering, on the set AnnData."""

from __future__ import annotations

import numpy as np
from anndata import AnnData

from gde._set_distances import cluster_sets, distance_matrix
from gde.metrics import pairwise_distances


def set_distances(
    set_adata: AnnData,
    *,
    use_rep: str = "X_gde",
    metric: str = "euclidean",
    key_added: str | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Distances between all pairs of sets in an embedding.

    Parameters
    ----------
    set_adata
        Set AnnData, one observation per set, as returned by
        :meth:`gde.GDEModel.get_set_adata`.
    use_rep
        Key of ``set_adata.obsm`` holding the set embeddings.
    metric
        Any metric of :func:`scipy.spatial.distance.pdist` (``"euclidean"``,
        ``"cosine"``, ``"correlation"``, ...).
    key_added
        Key of ``set_adata.obsp`` to write; ``f"{use_rep}_distances"`` by default.
    copy
        Return a modified copy of ``sets`` instead of writing in place.

    Returns
    -------
    ``None``, or the modified copy (``copy=True``). Sets
    ``set_adata.obsp[key_added]``: dense ``(n_sets, n_sets)`` distance matrix.
    """
    if use_rep not in set_adata.obsm:
        raise KeyError(
            f"sets.obsm['{use_rep}'] is missing (available: {list(set_adata.obsm) or 'none'}). "
            "Build the set AnnData with `model.get_set_adata()` or pass `use_rep=`."
        )
    z = np.asarray(set_adata.obsm[use_rep], dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"sets.obsm['{use_rep}'] must be 2-D, got shape {z.shape}.")
    if not np.isfinite(z).all():
        raise ValueError(f"sets.obsm['{use_rep}'] contains NaN or infinite values.")
    d = pairwise_distances(z, metric=metric)
    if copy:
        set_adata = set_adata.copy()
    set_adata.obsp[key_added or f"{use_rep}_distances"] = d
    return set_adata if copy else None


def set_dendrogram(
    set_adata: AnnData,
    *,
    distances_key: str = "X_gde_distances",
    method: str = "average",
    optimal_ordering: bool = False,
    key_added: str | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Hierarchical clustering of sets from their pairwise distances.

    Parameters
    ----------
    set_adata
        Set AnnData, one observation per set.
    distances_key
        Key of ``set_adata.obsp`` holding the set × set distances (see :func:`set_distances`).
    method
        Linkage method of :func:`scipy.cluster.hierarchy.linkage`. ``"centroid"``,
        ``"median"`` and ``"ward"`` assume Euclidean distances.
    optimal_ordering
        Reorder leaves so that neighbouring sets are as close as possible (slower).
    key_added
        Key of ``set_adata.uns`` to write; ``f"dendrogram_{distances_key}"`` by default.
    copy
        Return a modified copy of ``sets`` instead of writing in place.

    Returns
    -------
    ``None``, or the modified copy (``copy=True``). Sets ``set_adata.uns[key_added]``, a
    dict with ``"linkage"`` (the scipy linkage matrix), ``"order"`` (set names in leaf
    order, as a list), ``"method"`` and ``"distances_key"``.
    """
    d = distance_matrix(set_adata, distances_key)
    z, order = cluster_sets(d, method, optimal_ordering)
    if copy:
        set_adata = set_adata.copy()
    set_adata.uns[key_added or f"dendrogram_{distances_key}"] = {
        "linkage": z,
        "order": [str(set_adata.obs_names[i]) for i in order],
        "method": method,
        "distances_key": distances_key,
    }
    return set_adata if copy else None
