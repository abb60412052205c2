"""Count sets with equal expected pseudobulk that differ in composition and spread."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from gde._ot import exact_w2_matrix

from ._simulate import _set_sizes


def simulate_equal_mean_sets(
    n_sets: int = 48,
    n_cells_per_set: int | tuple[int, int] = 200,
    n_genes: int = 300,
    n_batches: int = 2,
    batch_effect: float = 0.5,
    marker_fold: float = 2.0,
    library_size: float = 2000.0,
    theta: float = 5.0,
    seed: int = 0,
) -> ad.AnnData:
    """Count sets whose expected pseudobulk is identical but whose cells are not.

    Three cell states: two extremes ``A`` and ``B`` (marker genes, a quarter of all,
    ``marker_fold`` up in log scale in one and down in the other) and a middle state
    ``M`` whose expected counts are the average of theirs. Each set has a share
    ``w_middle`` of ``M`` cells, the rest split equally between its own versions of ``A``
    and ``B``, pulled towards ``M`` by a factor ``spread`` in ``[0.3, 1]``. Every set's
    expected counts per gene are ``M``'s, so summed-count pseudobulks are identical in
    expectation, while the cells differ in composition (``w_middle``: bimodal versus
    unimodal) and in variance (``spread``). (A mean of *log*-normalised expression is
    not blind to them: the logarithm is not linear.) Sets belong to batches that scale
    genes and library sizes; counts are negative binomial.

    Parameters
    ----------
    n_sets
        Number of sets.
    n_cells_per_set
        Cells per set, or a ``(low, high)`` range.
    n_genes
        Number of genes (a quarter are markers).
    n_batches, batch_effect
        Batches and the standard deviation of their per-gene log fold changes.
    marker_fold
        Log fold change of the marker genes between ``A`` (or ``B``) and the baseline.
    library_size
        Mean counts per cell.
    theta
        Mean NB inverse dispersion.
    seed
        Random seed.

    Returns
    -------
    AnnData with counts in ``X`` (CSR); ``obs['set']``, ``obs['batch']`` and
    ``obs['state']``; ``uns['simulation']`` with ``'sets'`` (batch, size, ``w_middle``,
    ``spread`` per set), ``'w2'`` (set × set exact W2 between the sets' batch-free
    distributions of log expected expression) and ``'params'``.
    """
    if n_sets < 2 or n_genes < 4 or n_batches < 1:
        raise ValueError("Need n_sets >= 2, n_genes >= 4 and n_batches >= 1.")
    params = {k: v for k, v in locals().items() if k != "n_cells_per_set"}
    rng = np.random.default_rng(seed)
    sizes = _set_sizes(n_sets, n_cells_per_set, rng)
    base = rng.normal(0.0, 1.0, n_genes)
    markers = rng.permutation(n_genes)[: max(2, n_genes // 4)]
    direction = np.zeros(n_genes)
    direction[markers] = rng.choice([-1.0, 1.0], len(markers)) * marker_fold
    rate_a, rate_b = np.exp(base + direction), np.exp(base - direction)
    rate_b *= rate_a.sum() / rate_b.sum()  # equal totals: mixing keeps proportions linear
    rate_m = 0.5 * (rate_a + rate_b)
    w_middle = rng.uniform(0.0, 1.0, n_sets)
    spread = rng.uniform(0.3, 1.0, n_sets)
    # (n_sets, 3, n_genes) expected proportions of each set's states A, B, M; the
    # mixture of every set has M's proportions in expectation
    props = np.stack(
        [
            rate_m + spread[:, None] * (rate_a - rate_m),
            rate_m + spread[:, None] * (rate_b - rate_m),
            np.broadcast_to(rate_m, (n_sets, n_genes)),
        ],
        axis=1,
    )
    props /= rate_m.sum()
    weights = np.stack([(1 - w_middle) / 2, (1 - w_middle) / 2, w_middle], axis=1)
    w2 = exact_w2_matrix(np.log(props), weights)

    batch_shift = rng.normal(0.0, batch_effect, (n_batches, n_genes))
    batch_library = library_size * np.exp(rng.normal(0.0, 0.3, n_batches))
    gene_theta = theta * np.exp(rng.normal(0.0, 0.5, n_genes))
    set_batch = rng.integers(0, n_batches, n_sets)
    names = np.array([f"set_{i:0{len(str(n_sets - 1))}d}" for i in range(n_sets)])
    cell_set = np.repeat(np.arange(n_sets), sizes)
    state = (rng.random(len(cell_set))[:, None] > np.cumsum(weights[cell_set], 1)).sum(1)
    state = state.clip(max=2)
    prop = props[cell_set, state] * np.exp(batch_shift[set_batch[cell_set]])
    prop /= prop.sum(1, keepdims=True)
    lib = batch_library[set_batch[cell_set]] * np.exp(rng.normal(0.0, 0.25, len(cell_set)))
    mu = prop * lib[:, None]
    counts = rng.poisson(rng.gamma(gene_theta, mu / gene_theta)).astype(np.float32)

    obs = pd.DataFrame(
        {
            "set": pd.Categorical(names[cell_set], categories=names),
            "batch": pd.Categorical([f"batch_{b}" for b in set_batch[cell_set]]),
            "state": pd.Categorical(np.array(["A", "B", "M"])[state]),
        },
        index=[f"cell_{i}" for i in range(len(cell_set))],
    )
    adata = ad.AnnData(
        sparse.csr_matrix(counts),
        obs=obs,
        var=pd.DataFrame(index=[f"gene_{g}" for g in range(n_genes)]),
    )
    sets = pd.DataFrame(
        {
            "batch": [f"batch_{b}" for b in set_batch],
            "n_cells": sizes,
            "w_middle": w_middle,
            "spread": spread,
        },
        index=pd.Index(names, name="set"),
    )
    params["n_cells_per_set"] = (
        int(n_cells_per_set) if np.isscalar(n_cells_per_set) else list(n_cells_per_set)
    )
    adata.uns["simulation"] = {
        "sets": sets,
        "w2": pd.DataFrame(w2, index=names, columns=names),
        "params": params,
    }
    return adata
