"""Negative binomial counts from per-cell log expression rates, shared by the simulators."""

from __future__ import annotations

import numpy as np


def row_proportions(log_rates: np.ndarray) -> np.ndarray:
    """Each row's expression proportions: a softmax of its log rates."""
    prop = np.exp(log_rates - log_rates.max(1, keepdims=True))
    return prop / prop.sum(1, keepdims=True)


def nb_counts(
    log_rates: np.ndarray,
    library_size: float,
    library_sd: float,
    gene_theta: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Counts ``(n_cells, n_genes)``: gamma-Poisson around each cell's proportions.

    Each cell's library size is ``library_size`` times a log-normal factor of SD
    ``library_sd``; ``gene_theta`` is the inverse dispersion of each gene.
    """
    n = len(log_rates)
    mu = (
        row_proportions(log_rates)
        * (library_size * np.exp(rng.normal(0.0, library_sd, n)))[:, None]
    )
    return rng.poisson(rng.gamma(gene_theta, mu / gene_theta))
