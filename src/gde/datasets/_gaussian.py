"""Sets of samples from random Gaussians, with exact ground truth."""

from __future__ import annotations

from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
from scipy.stats import wishart

from gde.metrics import gaussian_w2_matrix


def _draw_covariances(
    rng: np.random.Generator,
    n: int,
    n_dims: int,
    cov_prior: str,
    cov_df: int | None,
    cov_scale: float,
) -> np.ndarray:
    """``n`` covariance matrices with mean ``cov_scale * I`` from an (inverse) Wishart."""
    if cov_prior == "wishart":
        df = n_dims + 2 if cov_df is None else cov_df
        covs = wishart(df=df, scale=np.eye(n_dims) * cov_scale / df).rvs(size=n, random_state=rng)
    elif cov_prior == "inverse_wishart":
        df = 10 * max(n_dims - 1, 1) if cov_df is None else cov_df
        if df <= n_dims + 1:
            raise ValueError("An inverse Wishart prior needs cov_df > n_dims + 1.")
        scale = np.eye(n_dims) / (cov_scale * (df - n_dims - 1))
        precisions = wishart(df=df, scale=scale).rvs(size=n, random_state=rng)
        covs = np.linalg.inv(np.asarray(precisions).reshape(n, n_dims, n_dims))
    else:
        raise ValueError(f"cov_prior must be 'wishart' or 'inverse_wishart', got {cov_prior!r}.")
    return np.asarray(covs).reshape(n, n_dims, n_dims)


def _split(rng: np.random.Generator, n_sets: int, held_out_fraction: float) -> np.ndarray:
    held = np.zeros(n_sets, dtype=bool)
    held[rng.permutation(n_sets)[: round(held_out_fraction * n_sets)]] = True
    return np.where(held, "held_out", "train")


def _samples_adata(
    rng: np.random.Generator, x: np.ndarray, prefix: str, held_out_fraction: float
) -> tuple[ad.AnnData, np.ndarray, np.ndarray]:
    """AnnData of ``x`` ``(n_sets, n_per_set, d)`` with ``obs['set']`` and ``obs['split']``.

    Sets are named ``prefix`` and a number; returns the AnnData, the names and the split.
    """
    n_sets, n_per, n_dims = x.shape
    names = np.array([f"{prefix}{i:0{len(str(n_sets - 1))}d}" for i in range(n_sets)])
    split = _split(rng, n_sets, held_out_fraction)
    obs = pd.DataFrame(
        {
            "set": pd.Categorical(np.repeat(names, n_per), categories=names),
            "split": pd.Categorical(np.repeat(split, n_per), categories=["train", "held_out"]),
        },
        index=[f"s{i}" for i in range(n_sets * n_per)],
    )
    adata = ad.AnnData(
        x.reshape(-1, n_dims).astype(np.float32),
        obs=obs,
        var=pd.DataFrame(index=[f"dim_{j}" for j in range(n_dims)]),
    )
    return adata, names, split


def _mixture_adata(
    rng: np.random.Generator,
    weights: np.ndarray,
    means: np.ndarray,
    covs: np.ndarray,
    n_samples_per_set: int,
    prefix: str,
    held_out_fraction: float,
) -> tuple[ad.AnnData, np.ndarray, np.ndarray]:
    """:func:`_samples_adata` of samples from each set's Gaussian mixture.

    ``weights`` ``(n_sets, K)``, ``means`` ``(n_sets, K, d)``, ``covs`` ``(n_sets, K, d, d)``;
    ``obs['component']`` names the component each sample came from.
    """
    n_sets, k, n_dims = means.shape
    chol = np.linalg.cholesky(covs)
    comp = np.stack([rng.choice(k, n_samples_per_set, p=w) for w in weights])
    z = rng.standard_normal((n_sets, n_samples_per_set, n_dims))
    rows = np.arange(n_sets)[:, None]
    x = means[rows, comp] + np.einsum("snij,snj->sni", chol[rows, comp], z)
    adata, names, split = _samples_adata(rng, x, prefix, held_out_fraction)
    adata.obs["component"] = comp.ravel()
    return adata, names, split


def _check_common(n_sets: int, n_samples_per_set: int, n_dims: int, held_out_fraction: float):
    if n_sets < 1 or n_samples_per_set < 2 or n_dims < 1:
        raise ValueError("Need n_sets >= 1, n_samples_per_set >= 2 and n_dims >= 1.")
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError("held_out_fraction must be in [0, 1).")


def gaussian_sets(
    n_sets: int = 200,
    n_samples_per_set: int = 500,
    n_dims: int = 5,
    mean_low: float = 0.0,
    mean_high: float = 1.0,
    cov_scale: float = 0.1,
    cov_df: int | None = None,
    cov_prior: Literal["wishart", "inverse_wishart"] = "wishart",
    held_out_fraction: float = 0.2,
    seed: int = 0,
) -> ad.AnnData:
    """Sets of samples, each set drawn from its own random Gaussian.

    Means are uniform in ``[mean_low, mean_high]^d``. Covariances have mean
    ``cov_scale * I`` and are drawn from a Wishart (``cov_prior="wishart"``, ``cov_df``
    degrees of freedom, default ``d + 2``: strongly anisotropic) or an inverse Wishart
    (``cov_prior="inverse_wishart"``, default ``cov_df = 10 (d - 1)``: close to isotropic;
    with ``cov_scale=1 / (cov_df - d - 1)`` this is the GDE paper's Gaussian prior,
    the inverse of a Wishart with scale ``I``). A fraction of the distributions is marked
    as held out, for testing on distributions never seen in training.

    Parameters
    ----------
    n_sets
        Number of Gaussians (sets).
    n_samples_per_set
        Samples per set.
    n_dims
        Dimension ``d``.
    mean_low, mean_high
        Range of the uniform prior on each mean coordinate.
    cov_scale
        Mean of the Wishart prior is ``cov_scale * I``.
    cov_df
        Degrees of freedom of the (inverse) Wishart prior.
    cov_prior
        ``"wishart"`` or ``"inverse_wishart"``.
    held_out_fraction
        Fraction of sets marked ``"held_out"`` in ``obs['split']``.
    seed
        Random seed.

    Returns
    -------
    AnnData with the samples in ``X`` (dense float32); ``obs['set']`` and
    ``obs['split']`` (``"train"`` or ``"held_out"``); ``uns['gaussian_sets']`` with
    ``'sets'`` (split per set), ``'means'`` ``(n_sets, d)``, ``'covs'`` ``(n_sets, d, d)``,
    ``'w2'`` (set × set true W2, data units; for up to 2,000 sets) and ``'params'``.
    """
    _check_common(n_sets, n_samples_per_set, n_dims, held_out_fraction)
    params = dict(locals())
    rng = np.random.default_rng(seed)
    means = rng.uniform(mean_low, mean_high, (n_sets, n_dims))
    covs = _draw_covariances(rng, n_sets, n_dims, cov_prior, cov_df, cov_scale)
    chol = np.linalg.cholesky(covs)
    z = rng.standard_normal((n_sets, n_samples_per_set, n_dims))
    x = means[:, None, :] + np.einsum("sij,snj->sni", chol, z)
    adata, names, split = _samples_adata(rng, x, "g", held_out_fraction)
    info = {
        "sets": pd.DataFrame({"split": split}, index=pd.Index(names, name="set")),
        "means": means,
        "covs": covs,
        "params": params,
    }
    if n_sets <= 2000:
        info["w2"] = pd.DataFrame(gaussian_w2_matrix(means, covs), index=names, columns=names)
    adata.uns["gaussian_sets"] = info
    return adata


def gmm_sets(
    n_sets: int = 200,
    n_samples_per_set: int = 500,
    n_dims: int = 2,
    n_components: int = 3,
    mean_low: float = 0.0,
    mean_high: float = 1.0,
    cov_scale: float = 1 / 34,
    cov_df: int | None = 40,
    cov_prior: Literal["wishart", "inverse_wishart"] = "inverse_wishart",
    dirichlet_alpha: float = 1.0,
    held_out_fraction: float = 0.2,
    seed: int = 0,
) -> ad.AnnData:
    """Sets of samples, each set drawn from its own random Gaussian mixture.

    Each set has ``n_components`` components with weights from a symmetric Dirichlet,
    means uniform in ``[mean_low, mean_high]^d`` and covariances from the prior of
    :func:`gaussian_sets` (by default the GDE paper's: inverse Wishart, mean
    ``cov_scale * I``).

    Parameters
    ----------
    n_sets
        Number of mixtures (sets).
    n_samples_per_set
        Samples per set.
    n_dims
        Dimension ``d``.
    n_components
        Components per mixture ``K``.
    mean_low, mean_high
        Range of the uniform prior on each mean coordinate.
    cov_scale, cov_df, cov_prior
        Covariance prior, as in :func:`gaussian_sets`.
    dirichlet_alpha
        Concentration of the Dirichlet prior on the weights (1: uniform on the simplex).
    held_out_fraction
        Fraction of sets marked ``"held_out"`` in ``obs['split']``.
    seed
        Random seed.

    Returns
    -------
    AnnData with the samples in ``X`` (dense float32); ``obs['set']``, ``obs['split']``
    and ``obs['component']`` (the component each sample came from);
    ``uns['gmm_sets']`` with ``'sets'`` (split per set), ``'weights'``
    ``(n_sets, K)``, ``'means'`` ``(n_sets, K, d)``, ``'covs'`` ``(n_sets, K, d, d)``
    and ``'params'``.
    """
    _check_common(n_sets, n_samples_per_set, n_dims, held_out_fraction)
    if n_components < 1 or dirichlet_alpha <= 0:
        raise ValueError("Need n_components >= 1 and dirichlet_alpha > 0.")
    params = dict(locals())
    rng = np.random.default_rng(seed)
    k = n_components
    weights = rng.dirichlet(np.full(k, dirichlet_alpha), size=n_sets)
    means = rng.uniform(mean_low, mean_high, (n_sets, k, n_dims))
    covs = _draw_covariances(rng, n_sets * k, n_dims, cov_prior, cov_df, cov_scale)
    covs = covs.reshape(n_sets, k, n_dims, n_dims)
    adata, names, split = _mixture_adata(
        rng, weights, means, covs, n_samples_per_set, "m", held_out_fraction
    )
    adata.uns["gmm_sets"] = {
        "sets": pd.DataFrame({"split": split}, index=pd.Index(names, name="set")),
        "weights": weights,
        "means": means,
        "covs": covs,
        "params": params,
    }
    return adata
