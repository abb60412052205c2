"""Distances between two sample sets: energy distance, MMD and the Sinkhorn divergence."""

from __future__ import annotations

import numpy as np
import torch

from gde._ot import sinkhorn_divergence as _batch_divergence


def _as_tensor(x) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    return x[:, None] if x.ndim == 1 else x


def _mean_cdist(a: torch.Tensor, b: torch.Tensor, fn, chunk: int = 2048) -> float:
    """Mean of ``fn(||a_i - b_j||²)`` over all pairs, in chunks of rows."""
    total = 0.0
    for start in range(0, len(a), chunk):
        d2 = torch.cdist(a[start : start + chunk], b).pow(2)
        total += float(fn(d2).sum())
    return total / (len(a) * len(b))


def energy_distance(x, y) -> float:
    """Energy distance ``2 E||X - Y|| - E||X - X'|| - E||Y - Y'||`` between two samples.

    Computed from all pairs (V-statistic), so it is exactly 0 for identical samples and
    non-negative. Units: those of the data (a distance, not squared); it is the square of
    a metric on distributions (Székely & Rizzo).

    Parameters
    ----------
    x, y
        Samples ``(n, d)`` and ``(m, d)`` (or 1-D arrays).
    """
    x, y = _as_tensor(x), _as_tensor(y)

    def dist(d2):
        return d2.clamp_min(0).sqrt()

    xy = _mean_cdist(x, y, dist)
    xx = _mean_cdist(x, x, dist)
    yy = _mean_cdist(y, y, dist)
    return max(2 * xy - xx - yy, 0.0)


def mmd(x, y, bandwidth: float | None = None, squared: bool = True) -> float:
    """Maximum mean discrepancy with a Gaussian kernel, unbiased estimate.

    ``k(a, b) = exp(-||a - b||² / (2 h²))``. The unbiased MMD² can be slightly negative
    when the two samples come from one distribution.

    Parameters
    ----------
    x, y
        Samples ``(n, d)`` and ``(m, d)`` (or 1-D arrays), ``n, m >= 2``.
    bandwidth
        Kernel bandwidth ``h``; by default the median distance between pooled points.
    squared
        Return MMD² (default; dimensionless, in kernel units) or its square root
        (clipped at 0).
    """
    x, y = _as_tensor(x), _as_tensor(y)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("mmd needs at least two points in each sample.")
    if bandwidth is None:
        pooled = torch.cat([x, y])[:2000]
        d = torch.pdist(pooled)
        bandwidth = float(d.median()) if len(d) else 1.0
        bandwidth = bandwidth if bandwidth > 0 else 1.0

    def kernel(d2):
        return torch.exp(-d2 / (2 * bandwidth**2))

    # unbiased: drop the diagonal (k(a, a) = 1) from the within-sample means
    kxx = (_mean_cdist(x, x, kernel) * n * n - n) / (n * (n - 1))
    kyy = (_mean_cdist(y, y, kernel) * m * m - m) / (m * (m - 1))
    kxy = _mean_cdist(x, y, kernel)
    value = kxx + kyy - 2 * kxy
    return value if squared else float(np.sqrt(max(value, 0.0)))


def sinkhorn_divergence(x, y, blur: float | None = None, n_iter: int = 100) -> float:
    """Debiased Sinkhorn divergence between two samples, an estimate of W2².

    ``S_ε(x, y) = OT_ε(x, y) - ½ OT_ε(x, x) - ½ OT_ε(y, y)`` with cost ``||a - b||²`` and
    uniform weights. Units: squared data units, like W2² (note that geomloss's ``p=2``
    cost is ``½||a - b||²``, half of this). Unlike the entropic cost ``OT_ε`` itself,
    which is not 0 between identical samples and so is no ground truth, the divergence
    is 0 for identical samples, non-negative, and tends to W2² as ``blur`` → 0; for the
    exact value see :func:`exact_w2`. The models' W2-matching term uses the same solver
    on batches of point clouds.

    Parameters
    ----------
    x, y
        Samples ``(n, d)`` and ``(m, d)`` (or 1-D arrays).
    blur
        Entropic blur ``√ε`` in data units; by default 5% of the root mean squared
        distance between the samples' points.
    n_iter
        Sinkhorn iterations at the final ε (after ε-scaling from the samples' diameter).
    """
    x, y = _as_tensor(x), _as_tensor(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"Samples have {x.shape[1]} and {y.shape[1]} features.")
    if blur is None:
        ms = _mean_cdist(x, y, lambda d2: d2)
        blur = 0.05 * float(np.sqrt(max(ms, 1e-24)))
    if blur <= 0:
        raise ValueError(f"blur must be positive, got {blur}.")
    value = _batch_divergence(x[None], y[None], blur**2, n_iter=n_iter)
    return max(float(value[0]), 0.0)
