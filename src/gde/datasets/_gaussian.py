"""Sets of samples from random Gaussians, with exact ground truth."""

from __future__ import annotations

from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
from scipy.stats import wishart

from gde.metrics import gaussian_w2_matrix


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
    if n_sets < 1 or n_samples_per_set < 2 or n_dims < 1:
        raise ValueError("Need n_sets >= 1, n_samples_per_set >= 2 and n_dims >= 1.")
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError("held_out_fraction must be in [0, 1).")
    params = dict(locals())
    rng = np.random.default_rng(seed)
    if cov_prior not in ("wishart", "inverse_wishart"):
        raise ValueError(f"cov_prior must be 'wishart' or 'inverse_wishart', got {cov_prior!r}.")
    means = rng.uniform(mean_low, mean_high, (n_sets, n_dims))
    if cov_prior == "wishart":
        df = n_dims + 2 if cov_df is None else cov_df
        covs = wishart(df=df, scale=np.eye(n_dims) * cov_scale / df).rvs(
            size=n_sets, random_state=rng
        )
    else:
        df = 10 * max(n_dims - 1, 1) if cov_df is None else cov_df
        if df <= n_dims + 1:
            raise ValueError("An inverse Wishart prior needs cov_df > n_dims + 1.")
        scale = np.eye(n_dims) / (cov_scale * (df - n_dims - 1))
        precisions = wishart(df=df, scale=scale).rvs(size=n_sets, random_state=rng)
        covs = np.linalg.inv(precisions.reshape(n_sets, n_dims, n_dims))
    covs = np.asarray(covs).reshape(n_sets, n_dims, n_dims)
    chol = np.linalg.cholesky(covs)
    z = rng.standard_normal((n_sets, n_samples_per_set, n_dims))
    x = means[:, None, :] + np.einsum("sij,snj->sni", chol, z)
    names = np.array([f"g{i:0{len(str(n_sets - 1))}d}" for i in range(n_sets)])
    held = np.zeros(n_sets, dtype=bool)
    held[rng.permutation(n_sets)[: round(held_out_fraction * n_sets)]] = True
    split = np.where(held, "held_out", "train")
    obs = pd.DataFrame(
        {
            "set": pd.Categorical(np.repeat(names, n_samples_per_set), categories=names),
            "split": pd.Categorical(
                np.repeat(split, n_samples_per_set), categories=["train", "held_out"]
            ),
        },
        index=[f"s{i}" for i in range(n_sets * n_samples_per_set)],
    )
    adata = ad.AnnData(
        x.reshape(-1, n_dims).astype(np.float32),
        obs=obs,
        var=pd.DataFrame(index=[f"dim_{j}" for j in range(n_dims)]),
    )
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
