"""Simulated sets of cells with known ground truth."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from gde._ot import exact_w2_matrix


def _set_sizes(n_sets: int, n_cells_per_set, rng: np.random.Generator) -> np.ndarray:
    if np.isscalar(n_cells_per_set):
        sizes = np.full(n_sets, int(n_cells_per_set))
    else:
        low, high = n_cells_per_set
        sizes = rng.integers(int(low), int(high) + 1, size=n_sets)
    if (sizes < 1).any():
        raise ValueError("`n_cells_per_set` must be at least 1.")
    return sizes


def true_w2(
    weights: np.ndarray, activities: np.ndarray, centers: np.ndarray, loadings: np.ndarray
) -> np.ndarray:
    """Exact W2 between the sets' batch-free distributions of cell states.

    Set ``s`` is the discrete distribution with mass ``weights[s, k]`` at the log-rate
    vector ``centers[k] + activities[s] @ loadings``.

    Parameters
    ----------
    weights
        ``(n_sets, n_states)`` mixture weights.
    activities
        ``(n_sets, n_programs)`` program activities.
    centers
        ``(n_states, n_genes)`` log-rate centres of the states.
    loadings
        ``(n_programs, n_genes)`` gene loadings of the programs.

    Returns
    -------
    ``(n_sets, n_sets)`` matrix of W2 distances (not squared).
    """
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    shifts = np.asarray(activities, dtype=np.float64) @ loadings  # (n_sets, n_genes)
    atoms = np.asarray(centers, dtype=np.float64)[None] + shifts[:, None]  # (sets, states, genes)
    return exact_w2_matrix(atoms, weights)


def simulate_sets(
    n_sets: int = 48,
    n_cells_per_set: int | tuple[int, int] = 200,
    n_genes: int = 500,
    n_states: int = 5,
    n_programs: int = 2,
    n_batches: int = 2,
    batch_effect: float = 0.5,
    state_separation: float = 2.0,
    program_strength: float = 1.0,
    cell_noise: float = 0.3,
    dirichlet_alpha: float = 1.0,
    library_size: float = 2000.0,
    theta: float = 5.0,
    seed: int = 0,
    chunk_size: int = 20000,
) -> ad.AnnData:
    """Simulate sets of cells whose distributions differ in known ways.

    Cells come in ``n_states`` states (cell types, each with its own marker genes). Each
    set has its own mixture weights over the states and its own activity of
    ``n_programs`` gene programs that shift expression in all of its cells; each cell adds
    its own noise to the program activities. Sets belong to batches that scale gene
    expression and library size. Counts are negative binomial.

    The ground truth is the set parameters and the exact 2-Wasserstein distance between
    the sets' batch-free distributions of cell states in log-rate space: set ``s`` puts
    mass ``w_sk`` on ``c_k + a_s W``. Because every cell's noise has the same covariance,
    this is also the mixture-W2 between the Gaussian mixtures the cells are drawn from.

    Parameters
    ----------
    n_sets
        Number of sets.
    n_cells_per_set
        Cells per set, or a ``(low, high)`` range to draw each set's size from.
    n_genes
        Number of genes.
    n_states
        Number of cell states.
    n_programs
        Number of gene programs whose activity varies between sets.
    n_batches
        Number of batches; each set belongs to one (sets nested in batches).
    batch_effect
        Standard deviation of the per-gene log-fold change of each batch.
    state_separation
        Log-fold change of each state's marker genes.
    program_strength
        Scale of the program loadings.
    cell_noise
        Standard deviation of the per-cell noise on program activities.
    dirichlet_alpha
        Concentration of the Dirichlet prior on mixture weights (small: few states per
        set).
    library_size
        Mean counts per cell.
    theta
        Mean inverse dispersion of the negative binomial (per gene, log-normal around it).
    seed
        Random seed.
    chunk_size
        Cells simulated at once (bounds memory for millions of cells).

    Returns
    -------
    AnnData with raw counts (CSR, float32) in ``X``; ``obs['set']``, ``obs['batch']`` and
    ``obs['state']``; ``uns['simulation']`` with ``'sets'`` (per-set batch, size,
    weights ``w_k`` and activities ``a_p``), ``'w2'`` (set × set ground-truth W2),
    ``'state_centers'``, ``'program_loadings'`` and ``'params'``.

    Examples
    --------
    >>> adata = gde.datasets.simulate_sets(n_sets=24, n_cells_per_set=(80, 200))
    >>> adata.uns["simulation"]["w2"].shape
    (24, 24)
    """
    if n_sets < 1 or n_genes < 2 or n_states < 1 or n_batches < 1 or n_programs < 0:
        raise ValueError(
            "n_sets, n_states and n_batches must be >= 1, n_genes >= 2, n_programs >= 0."
        )
    params = {k: v for k, v in locals().items() if k not in ("n_cells_per_set",)}
    rng = np.random.default_rng(seed)
    sizes = _set_sizes(n_sets, n_cells_per_set, rng)

    base = rng.normal(0.0, 1.0, n_genes)
    centers = np.tile(base, (n_states, 1))
    n_markers = max(1, n_genes // (4 * n_states))
    marker_genes = rng.permutation(n_genes)[: n_markers * n_states].reshape(n_states, -1)
    for k in range(n_states):
        centers[k, marker_genes[k]] += state_separation
    loadings = np.zeros((n_programs, n_genes))
    for p in range(n_programs):
        genes = rng.choice(n_genes, size=max(1, n_genes // 10), replace=False)
        loadings[p, genes] = rng.normal(0.0, program_strength, len(genes))
    batch_shift = rng.normal(0.0, batch_effect, (n_batches, n_genes))
    batch_library = library_size * np.exp(rng.normal(0.0, 0.3, n_batches))
    gene_theta = theta * np.exp(rng.normal(0.0, 0.5, n_genes))

    weights = rng.dirichlet(np.full(n_states, dirichlet_alpha), size=n_sets)
    activities = rng.normal(0.0, 1.0, (n_sets, n_programs))
    set_batch = rng.integers(0, n_batches, n_sets)
    set_names = np.array([f"set_{i:0{len(str(n_sets - 1))}d}" for i in range(n_sets)])

    cell_set = np.repeat(np.arange(n_sets), sizes)
    n_cells = len(cell_set)
    cell_state = np.empty(n_cells, dtype=np.int64)
    blocks = []
    for start in range(0, n_cells, chunk_size):
        s = cell_set[start : start + chunk_size]
        u = rng.random(len(s))[:, None]
        state = (u > np.cumsum(weights[s], axis=1)).sum(axis=1).clip(max=n_states - 1)
        cell_state[start : start + len(s)] = state
        act = activities[s] + rng.normal(0.0, cell_noise, (len(s), n_programs))
        log_rate = centers[state] + act @ loadings + batch_shift[set_batch[s]]
        log_rate -= log_rate.max(axis=1, keepdims=True)
        prop = np.exp(log_rate)
        prop /= prop.sum(axis=1, keepdims=True)
        lib = batch_library[set_batch[s]] * np.exp(rng.normal(0.0, 0.25, len(s)))
        mu = prop * lib[:, None]
        rate = rng.gamma(gene_theta, mu / gene_theta)
        counts = rng.poisson(rate).astype(np.float32)
        blocks.append(sparse.csr_matrix(counts))
    x = sparse.vstack(blocks, format="csr")

    obs = pd.DataFrame(
        {
            "set": pd.Categorical(set_names[cell_set], categories=set_names),
            "batch": pd.Categorical([f"batch_{b}" for b in set_batch[cell_set]]),
            "state": pd.Categorical([f"state_{k}" for k in cell_state]),
        },
        index=[f"cell_{i}" for i in range(n_cells)],
    )
    var = pd.DataFrame(index=[f"gene_{g}" for g in range(n_genes)])
    adata = ad.AnnData(x, obs=obs, var=var)

    sets = pd.DataFrame(index=pd.Index(set_names, name="set"))
    sets["batch"] = [f"batch_{b}" for b in set_batch]
    sets["n_cells"] = sizes
    for k in range(n_states):
        sets[f"w_{k}"] = weights[:, k]
    for p in range(n_programs):
        sets[f"a_{p}"] = activities[:, p]
    w2 = pd.DataFrame(
        true_w2(weights, activities, centers, loadings), index=set_names, columns=set_names
    )
    params["n_cells_per_set"] = (
        int(n_cells_per_set) if np.isscalar(n_cells_per_set) else list(n_cells_per_set)
    )
    adata.uns["simulation"] = {
        "sets": sets,
        "w2": w2,
        "state_centers": centers,
        "program_loadings": loadings,
        "params": params,
    }
    return adata
