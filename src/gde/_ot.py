"""Optimal transport between point clouds: exact W2 and the debiased Sinkhorn divergence.

All costs are ``c(x, y) = ||x - y||²`` (not ``½||x - y||²``), so squared values are in
squared data units and the entropic ones tend to W2² (exact OT with that cost).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import ot
import torch
from scipy.optimize import linear_sum_assignment

_MAX_ITER = 10_000_000  # network simplex iterations: enough for clouds of thousands


def exact_w2(x, y, weights_x=None, weights_y=None, *, squared: bool = False) -> float:
    """Exact 2-Wasserstein distance between two samples (weighted point clouds).

    Optimal transport with cost ``||a - b||²``, solved exactly by the network simplex
    (POT's :func:`ot.emd2`). Each sample is the uniform distribution over its points
    unless weights are given; two uniform samples of equal size are matched by an
    optimal assignment instead (an optimal plan between them is a permutation), which
    is faster and gives the same value.

    Parameters
    ----------
    x, y
        Samples ``(n, d)`` and ``(m, d)`` (or 1-D arrays).
    weights_x, weights_y
        Masses ``(n,)`` and ``(m,)`` of the points, each summing to the same total
        (e.g. 1); uniform by default.
    squared
        Return W2² (squared data units) instead of W2 (data units).

    Returns
    -------
    W2, or W2² with ``squared=True``; never negative.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(200, 3))
    >>> round(gde.metrics.exact_w2(x, x + [1.0, 2.0, 2.0]), 6)  # a translation: its length
    3.0
    """
    x, y = _as_points(x), _as_points(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"Samples have {x.shape[1]} and {y.shape[1]} features.")
    value = transport_cost(ot.dist(x, y), weights_x, weights_y)  # squared Euclidean costs
    return value if squared else float(np.sqrt(value))


def transport_cost(cost: np.ndarray, weights_x=None, weights_y=None) -> float:
    """Optimal transport cost for the cost matrix ``cost`` ``(n, m)``; never negative.

    Uniform masses by default: then, for ``n == m``, an optimal assignment (the same
    value, faster); otherwise the network simplex.
    """
    # C-contiguous float64: POT's network simplex refuses strided arrays (before 0.9.7)
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    if weights_x is None and weights_y is None and cost.shape[0] == cost.shape[1]:
        rows, cols = linear_sum_assignment(cost)
        value = cost[rows, cols].mean()
    else:
        a = [] if weights_x is None else np.ascontiguousarray(weights_x, dtype=np.float64)
        b = [] if weights_y is None else np.ascontiguousarray(weights_y, dtype=np.float64)
        value = ot.emd2(a, b, cost, numItermax=_MAX_ITER)
    return max(float(value), 0.0)


def exact_w2_matrix(clouds: Sequence, weights: Sequence | None = None) -> np.ndarray:
    """Exact W2 (not squared) between every pair of clouds, ``(k, k)``, zero diagonal.

    ``clouds[i]`` is ``(n_i, d)``; ``weights[i]`` its masses (uniform by default).
    """
    k = len(clouds)
    out = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            w_i, w_j = (None, None) if weights is None else (weights[i], weights[j])
            out[i, j] = out[j, i] = exact_w2(clouds[i], clouds[j], w_i, w_j)
    return out


def _as_points(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``||x_i - y_j||²`` for batches ``(B, n, d)``, ``(B, m, d)`` → ``(B, n, m)``."""
    d2 = (
        (x * x).sum(-1)[..., :, None] + (y * y).sum(-1)[..., None, :] - 2 * x @ y.transpose(-1, -2)
    )
    return d2.clamp_min(0.0)


def sinkhorn_cost(
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float | torch.Tensor,
    n_iter: int = 50,
    scaling: float = 0.7,
) -> torch.Tensor:
    """Entropic OT cost ``OT_ε`` between uniform point clouds, batched, in log domain.

    The dual value ``<a, f> + <b, g>`` after symmetric Sinkhorn updates with ε annealed
    from the squared diameter down to ``eps`` (ε-scaling). It is *not* zero between
    identical clouds; :func:`sinkhorn_divergence` removes that bias.

    Parameters
    ----------
    x, y
        Point clouds ``(B, n, d)`` and ``(B, m, d)``.
    eps
        Final entropic regularisation ε, in squared data units (a scalar or ``(B,)``).
    n_iter
        Iterations at the final ε, after annealing.
    scaling
        Factor by which ε shrinks at each annealing step.

    Returns
    -------
    ``(B,)`` costs, squared data units.
    """
    cost_xy = squared_distances(x, y)
    cost_yx = cost_xy.transpose(-1, -2)
    n, m = x.shape[-2], y.shape[-2]
    log_a = torch.full(x.shape[:-1], -float(np.log(n)), dtype=x.dtype, device=x.device)
    log_b = torch.full(y.shape[:-1], -float(np.log(m)), dtype=y.dtype, device=y.device)
    eps_t = torch.as_tensor(eps, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
    eps_t = eps_t.expand(x.shape[0], 1, 1) if eps_t.shape[0] == 1 else eps_t
    diameter = cost_xy.amax(dim=(-1, -2), keepdim=True).clamp_min(eps_t)
    n_anneal = int(np.ceil(np.log(float((diameter / eps_t).max())) / -np.log(scaling)))
    schedule = [torch.maximum(diameter * scaling**k, eps_t) for k in range(max(n_anneal, 0) + 1)]
    schedule += [eps_t] * n_iter

    def step(e, f, g):
        e2 = e.squeeze(-1)  # (B, 1)
        ft = -e2 * torch.logsumexp(log_b[:, None, :] + (g[:, None, :] - cost_xy) / e, dim=-1)
        gt = -e2 * torch.logsumexp(log_a[:, None, :] + (f[:, None, :] - cost_yx) / e, dim=-1)
        return ft, gt

    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    f, g = step(schedule[0], f, g)
    for e in schedule[1:]:
        ft, gt = step(e, f, g)
        f, g = 0.5 * (f + ft), 0.5 * (g + gt)
    f, g = step(eps_t, f, g)  # a last full update at the final ε
    return f.mean(-1) + g.mean(-1)


def sinkhorn_divergence(
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float | torch.Tensor,
    n_iter: int = 50,
) -> torch.Tensor:
    """Debiased Sinkhorn divergence ``OT_ε(x, y) - ½ OT_ε(x, x) - ½ OT_ε(y, y)``, batched.

    Zero between identical clouds, non-negative, and tends to W2² as ε → 0 (cost
    ``||x - y||²``, squared data units). :func:`gde.metrics.sinkhorn_divergence` is
    the same on two samples.

    Parameters
    ----------
    x, y
        Point clouds ``(B, n, d)`` and ``(B, m, d)``.
    eps
        Entropic regularisation ε (squared data units).
    n_iter
        Sinkhorn iterations at the final ε.

    Returns
    -------
    ``(B,)`` divergences, squared data units.
    """
    xy = sinkhorn_cost(x, y, eps, n_iter)
    xx = sinkhorn_cost(x, x, eps, n_iter)
    yy = sinkhorn_cost(y, y, eps, n_iter)
    return xy - 0.5 * (xx + yy)
