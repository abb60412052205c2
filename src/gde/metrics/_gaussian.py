"""Closed-form 2-Wasserstein distances between Gaussians."""

from __future__ import annotations

import numpy as np


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Square root of symmetric positive semi-definite matrices ``(..., d, d)``."""
    w, v = np.linalg.eigh((a + np.swapaxes(a, -1, -2)) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))[..., None, :]) @ np.swapaxes(v, -1, -2)


def bures_squared(cov1: np.ndarray, cov2: np.ndarray) -> np.ndarray:
    """Squared Bures distance ``tr Σ1 + tr Σ2 - 2 tr (Σ1^½ Σ2 Σ1^½)^½``.

    This is the covariance part of the squared 2-Wasserstein distance between Gaussians,
    in squared data units. Broadcasts over leading axes.
    """
    s1 = _sqrtm_psd(np.asarray(cov1, dtype=np.float64))
    cross = s1 @ np.asarray(cov2, dtype=np.float64) @ s1
    w = np.linalg.eigvalsh((cross + np.swapaxes(cross, -1, -2)) / 2)
    out = (
        np.trace(cov1, axis1=-2, axis2=-1)
        + np.trace(cov2, axis1=-2, axis2=-1)
        - 2 * np.sqrt(np.clip(w, 0, None)).sum(-1)
    )
    return np.clip(out, 0.0, None)


def gaussian_w2(
    mean1: np.ndarray,
    cov1: np.ndarray,
    mean2: np.ndarray,
    cov2: np.ndarray,
    squared: bool = False,
) -> np.ndarray:
    """2-Wasserstein distance between Gaussians ``N(mean1, cov1)`` and ``N(mean2, cov2)``.

    ``W2² = ||μ1 - μ2||² + Bures²(Σ1, Σ2)``. Returns W2 (data units), or W2² with
    ``squared=True``. Broadcasts over leading axes.
    """
    mean_term = ((np.asarray(mean1, np.float64) - np.asarray(mean2, np.float64)) ** 2).sum(-1)
    w2sq = mean_term + bures_squared(cov1, cov2)
    return w2sq if squared else np.sqrt(w2sq)


def gaussian_w2_matrix(means: np.ndarray, covs: np.ndarray, squared: bool = False) -> np.ndarray:
    """Pairwise Gaussian W2 (or W2² with ``squared=True``) between ``n`` Gaussians.

    Parameters
    ----------
    means
        ``(n, d)``.
    covs
        ``(n, d, d)``.
    """
    means, covs = np.asarray(means, np.float64), np.asarray(covs, np.float64)
    n = len(means)
    out = np.zeros((n, n))
    for i in range(n):
        out[i, i + 1 :] = gaussian_w2(means[i], covs[i], means[i + 1 :], covs[i + 1 :], True)
    out = out + out.T
    return out if squared else np.sqrt(out)


def gaussian_w2_samples(x: np.ndarray, y: np.ndarray, squared: bool = False) -> float:
    """W2 between the Gaussians fitted (mean, covariance) to two samples ``(n, d)``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return float(
        gaussian_w2(
            x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False), squared
        )
    )


def moment_error(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> float:
    """``||Δμ|| + Bures²(Σ)`` between a sample and a Gaussian (the GDE paper's metric).

    Note the mixed units: the mean error is a distance, the covariance error squared.
    """
    x = np.asarray(x, np.float64)
    delta = np.linalg.norm(x.mean(0) - np.asarray(mean))
    return float(delta + bures_squared(np.cov(x, rowvar=False), np.asarray(cov)))
