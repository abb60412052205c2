"""Mixture 2-Wasserstein distance between Gaussian mixtures, and its sample estimate."""

from __future__ import annotations

import numpy as np
import ot


def _check_gmm(weights, means, covs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    m = np.asarray(means, dtype=np.float64)
    c = np.asarray(covs, dtype=np.float64)
    if m.ndim != 2 or c.shape != (m.shape[0], m.shape[1], m.shape[1]) or len(w) != len(m):
        raise ValueError(
            "A Gaussian mixture is given as weights (K,), means (K, d) and covariances "
            f"(K, d, d); got {w.shape}, {m.shape} and {c.shape}."
        )
    if np.any(w < 0) or not np.isclose(w.sum(), 1.0, atol=1e-6):
        raise ValueError("Mixture weights must be non-negative and sum to 1.")
    return w, m, c


def gmm_w2_squared(weights1, means1, covs1, weights2, means2, covs2) -> float:
    """Mixture 2-Wasserstein distance MW2² between two Gaussian mixtures.

    Optimal transport between the mixtures' components, each pair of components costing
    their squared Gaussian W2 (``||Δμ||² + Bures²``), restricted to plans between whole
    components (Delon & Desolneux, 2020; computed with POT's ``ot.gmm.gmm_ot_loss``). It
    is an upper bound on W2² between the mixtures' densities and equals W2² for single
    Gaussians. Units: squared data units (W2², not W2).

    Parameters
    ----------
    weights1, means1, covs1
        First mixture: weights ``(K1,)``, means ``(K1, d)``, covariances ``(K1, d, d)``.
    weights2, means2, covs2
        Second mixture, same layout with ``K2`` components.
    """
    w1, m1, c1 = _check_gmm(weights1, means1, covs1)
    w2, m2, c2 = _check_gmm(weights2, means2, covs2)
    if m1.shape[1] != m2.shape[1]:
        raise ValueError(f"The mixtures live in {m1.shape[1]} and {m2.shape[1]} dimensions.")
    return float(max(ot.gmm.gmm_ot_loss(m1, m2, c1, c2, w1, w2), 0.0))


def fit_gmm(
    x, n_components: int, seed: int = 0, reg_covar: float = 1e-6
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit a Gaussian mixture with full covariances to samples (EM, scikit-learn).

    Parameters
    ----------
    x
        Samples ``(n, d)``.
    n_components
        Number of components ``K``.
    seed
        Seed of the initialisation (k-means).
    reg_covar
        Added to the covariances' diagonals.

    Returns
    -------
    ``(weights (K,), means (K, d), covariances (K, d, d))``.
    """
    from sklearn.mixture import GaussianMixture

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < n_components:
        raise ValueError(f"Need samples (n, d) with n >= {n_components}; got {x.shape}.")
    fit = GaussianMixture(
        n_components, covariance_type="full", random_state=seed, reg_covar=reg_covar, n_init=2
    ).fit(x)
    return fit.weights_ / fit.weights_.sum(), fit.means_, fit.covariances_


def gmm_w2_samples(x, weights, means, covs, n_components: int | None = None, seed: int = 0):
    """MW2² between a mixture fitted to samples ``x`` and a known Gaussian mixture.

    The GDE paper's reconstruction error for mixtures: decode samples from an embedding,
    fit a mixture with as many components as the truth, and compare with
    :func:`gmm_w2_squared`. Units: squared data units.

    Parameters
    ----------
    x
        Samples ``(n, d)``.
    weights, means, covs
        True mixture: ``(K,)``, ``(K, d)``, ``(K, d, d)``.
    n_components
        Components of the fitted mixture (default ``K``).
    seed
        Seed of the fit.
    """
    w, m, c = _check_gmm(weights, means, covs)
    fitted = fit_gmm(x, n_components or len(w), seed=seed)
    return gmm_w2_squared(*fitted, w, m, c)
