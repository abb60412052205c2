"""Set × set distances stored in a set AnnData, and their hierarchical clustering."""

from __future__ import annotations

import numpy as np
from anndata import AnnData
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from gde._anndata_utils import to_dense

_LINKAGE_METHODS = ("single", "complete", "average", "weighted", "centroid", "median", "ward")


def distance_matrix(sets: AnnData, distances_key: str) -> np.ndarray:
    """The dense, checked ``(n_sets, n_sets)`` matrix ``sets.obsp[distances_key]``."""
    if distances_key not in sets.obsp:
        raise KeyError(
            f"sets.obsp['{distances_key}'] is missing (available: "
            f"{list(sets.obsp) or 'none'}). Run `gde.tl.set_distances(sets)` first."
        )
    d = to_dense(sets.obsp[distances_key])
    if not np.isfinite(d).all():
        raise ValueError(f"sets.obsp['{distances_key}'] contains NaN or infinite values.")
    if not np.allclose(d, d.T):
        raise ValueError(f"sets.obsp['{distances_key}'] is not symmetric.")
    return d


def cluster_sets(
    d: np.ndarray, method: str = "average", optimal_ordering: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Linkage matrix and leaf order (row positions) of a square distance matrix."""
    if method not in _LINKAGE_METHODS:
        raise ValueError(f"method must be one of {_LINKAGE_METHODS}, got {method!r}.")
    if d.shape[0] < 2:
        raise ValueError("Clustering needs at least two sets.")
    z = linkage(squareform(d, checks=False), method=method, optimal_ordering=optimal_ordering)
    return z, leaves_list(z)
