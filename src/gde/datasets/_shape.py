"""Sets that share mean and covariance and differ only in shape."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from ._gaussian import _check_common, _mixture_adata


def _whiten(weights: np.ndarray, means: np.ndarray, covs: np.ndarray):
    """Affine map of a Gaussian mixture to mean 0 and covariance I (exact, population)."""
    mu = weights @ means  # (d,)
    centred = means - mu
    # law of total covariance: within-component plus between-component
    cov = np.einsum("k,kij->ij", weights, covs) + np.einsum(
        "k,ki,kj->ij", weights, centred, centred
    )
    vals, vecs = np.linalg.eigh(cov)
    inv_root = vecs @ np.diag(vals**-0.5) @ vecs.T  # symmetric Σ^{-1/2}
    return centred @ inv_root.T, np.einsum("ij,kjl,ml->kim", inv_root, covs, inv_root)


def shape_sets(
    n_sets: int = 200,
    n_samples_per_set: int = 500,
    n_dims: int = 5,
    n_components: int = 4,
    max_separation: float = 4.0,
    dirichlet_alpha: float = 0.5,
    held_out_fraction: float = 0.2,
    seed: int = 0,
) -> ad.AnnData:
    """Sets with identical mean and covariance whose distributions differ in shape.

    Each set starts as a Gaussian mixture: up to ``n_components`` components with
    Dirichlet(``dirichlet_alpha``) weights (small: some components nearly empty, so the
    number of modes varies), component means at a random distance up to
    ``max_separation`` from the origin in random directions (0: one Gaussian; large:
    separated modes), and isotropic component spreads of random size. The mixture is
    then mapped affinely to mean 0 and covariance ``I``, exactly (with its population
    moments). Every set therefore has the same mean and covariance, so a set mean
    (pseudobulk) or mean-and-covariance embedding cannot tell them apart, while the 2-Wasserstein
    distances between them vary: some are unimodal and Gaussian, others bimodal,
    skewed or with a heavy cluster.

    Parameters
    ----------
    n_sets
        Number of distributions (sets).
    n_samples_per_set
        Samples per set.
    n_dims
        Dimension ``d``.
    n_components
        Largest number of mixture components.
    max_separation
        Largest distance of a component mean from the origin, before whitening, in
        units of the component spread.
    dirichlet_alpha
        Concentration of the weights' Dirichlet prior.
    held_out_fraction
        Fraction of sets marked ``"held_out"`` in ``obs['split']``.
    seed
        Random seed.

    Returns
    -------
    AnnData with the samples in ``X`` (dense float32); ``obs['set']``, ``obs['split']``
    and ``obs['component']``; ``uns['shape_sets']`` with ``'sets'`` (split and
    separation per set), and the whitened mixtures: ``'weights'`` ``(n_sets, K)``,
    ``'means'`` ``(n_sets, K, d)``, ``'covs'`` ``(n_sets, K, d, d)``, and ``'params'``.
    The exact W2 between two sets is computed from their samples, e.g. with
    :func:`gde.tl.wasserstein_distances`.

    Examples
    --------
    >>> adata = gde.datasets.shape_sets(n_sets=20, n_samples_per_set=200)
    >>> adata.X.mean(0).round(1)  # every set: mean 0, covariance I
    """
    _check_common(n_sets, n_samples_per_set, n_dims, held_out_fraction)
    if n_components < 1 or dirichlet_alpha <= 0 or max_separation < 0:
        raise ValueError("Need n_components >= 1, dirichlet_alpha > 0 and max_separation >= 0.")
    params = dict(locals())
    rng = np.random.default_rng(seed)
    k = n_components
    weights = rng.dirichlet(np.full(k, dirichlet_alpha), size=n_sets)
    separation = rng.uniform(0.0, max_separation, n_sets)
    directions = rng.standard_normal((n_sets, k, n_dims))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    radii = rng.uniform(0.3, 1.0, (n_sets, k)) * separation[:, None]
    spreads = rng.uniform(0.4, 1.0, (n_sets, k))
    means = np.zeros((n_sets, k, n_dims))
    covs = np.zeros((n_sets, k, n_dims, n_dims))
    for s in range(n_sets):
        raw_means = directions[s] * radii[s][:, None]
        raw_covs = spreads[s][:, None, None] ** 2 * np.eye(n_dims)
        means[s], covs[s] = _whiten(weights[s], raw_means, raw_covs)
    adata, names, split = _mixture_adata(
        rng, weights, means, covs, n_samples_per_set, "p", held_out_fraction
    )
    adata.uns["shape_sets"] = {
        "sets": pd.DataFrame(
            {"split": split, "separation": separation}, index=pd.Index(names, name="set")
        ),
        "weights": weights,
        "means": means,
        "covs": covs,
        "params": params,
    }
    return adata
