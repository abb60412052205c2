"""Optimal transport between batches of point clouds: exact W2² and debiased Sinkhorn.

All costs are ``c(x, y) = ||x - y||²`` (not ``½||x - y||²``), so every value returned
here is in squared data units and tends to W2² (exact OT with that cost).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import ot
import torch
from scipy.optimize import linear_sum_assignment

OTSolver = Literal["auto", "exact", "sinkhorn"]


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
    ``||x - y||²``, squared data units).

    Parameters
    ----------
    x, y
        Point clouds ``(B, n, d)`` and ``(B, m, d)``.
    eps
        Entropic regularisation ε (squared data units).
    n_iter
        Sinkhorn iterations at the final ε.
    """
    xy = sinkhorn_cost(x, y, eps, n_iter)
    xx = sinkhorn_cost(x, x, eps, n_iter)
    yy = sinkhorn_cost(y, y, eps, n_iter)
    return xy - 0.5 * (xx + yy)


def exact_w2_squared(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact W2² between uniform point clouds, pair by pair.

    Clouds of equal size are matched by an optimal assignment (an optimal plan between
    uniform clouds of equal size is a permutation); others by the network simplex (POT).

    Parameters
    ----------
    x, y
        Point clouds ``(B, n, d)`` and ``(B, m, d)``.

    Returns
    -------
    ``(B,)`` W2², squared data units, on ``x``'s device.
    """
    costs = squared_distances(x.detach(), y.detach()).double().cpu().numpy()
    n, m = costs.shape[-2:]
    if n == m:
        # uniform weights, equal sizes: an optimal plan is a permutation (Birkhoff)
        out = []
        for c in costs:
            rows, cols = linear_sum_assignment(c)
            out.append(c[rows, cols].mean())
    else:
        a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
        out = [ot.emd2(a, b, c) for c in costs]
    return torch.as_tensor(np.asarray(out), dtype=x.dtype, device=x.device)


def batch_w2_squared(
    x: torch.Tensor,
    y: torch.Tensor,
    solver: OTSolver = "auto",
    eps_relative: float = 0.01,
    exact_max_points: int = 256,
) -> torch.Tensor:
    """W2² between pairs of uniform point clouds, by exact OT or debiased Sinkhorn.

    Parameters
    ----------
    x, y
        Point clouds ``(B, n, d)`` and ``(B, m, d)``.
    solver
        ``"exact"`` (network simplex), ``"sinkhorn"`` (debiased Sinkhorn divergence) or
        ``"auto"``: exact up to ``exact_max_points`` points per cloud, Sinkhorn above.
    eps_relative
        Sinkhorn's ε as a fraction of the mean squared distance between the clouds'
        points (per pair), so that it follows the data's scale.
    exact_max_points
        Largest cloud solved exactly by ``"auto"``.

    Returns
    -------
    ``(B,)`` W2² estimates, squared data units, without gradient.
    """
    if solver not in ("auto", "exact", "sinkhorn"):
        raise ValueError(f"solver must be 'auto', 'exact' or 'sinkhorn', got {solver!r}.")
    with torch.no_grad():
        if solver == "exact" or (
            solver == "auto" and max(x.shape[-2], y.shape[-2]) <= exact_max_points
        ):
            return exact_w2_squared(x, y)
        eps = eps_relative * squared_distances(x, y).mean(dim=(-1, -2)).clamp_min(1e-12)
        return sinkhorn_divergence(x.double(), y.double(), eps.double()).clamp_min(0).to(x.dtype)


class PairwiseW2:
    """W2 between fixed point clouds of sets, computed on first request and cached.

    Each set is represented by one fixed cloud of points (e.g. a random subsample of its
    cells in a fixed low-dimensional space); the distance between two sets is computed
    once, when a minibatch first holds both, and reused afterwards, so that a target
    for every pair of a minibatch costs a look-up.

    Parameters
    ----------
    clouds
        Mapping from a set's code to its cloud ``(n_points, d)``; all clouds the same size
        for the exact solver's assignment shortcut.
    solver
        As in :func:`batch_w2_squared`.
    """

    def __init__(self, clouds: dict[int, torch.Tensor], solver: OTSolver = "auto"):
        self.clouds = {int(k): v.detach().float().cpu() for k, v in clouds.items()}
        self.solver = solver
        self._cache: dict[tuple[int, int], float] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def matrix(self, codes: torch.Tensor, max_new: int | None = None) -> torch.Tensor:
        """W2 (not squared) between the pairs of the sets ``codes`` ``(n,)`` → ``(n, n)``.

        Pairs not yet known are computed, at most ``max_new`` of them (a random choice),
        so that the cost of a call stays bounded while the cache fills; the others, and
        sets without a cloud, are NaN.
        """
        ids = [int(c) for c in codes.reshape(-1).tolist()]
        missing = sorted(
            {
                (min(a, b), max(a, b))
                for a in ids
                for b in ids
                if a != b
                and a in self.clouds
                and b in self.clouds
                and (min(a, b), max(a, b)) not in self._cache
            }
        )
        if max_new is not None and len(missing) > max_new:
            pick = torch.randperm(len(missing))[:max_new].tolist()
            missing = [missing[k] for k in sorted(pick)]
        if missing:
            x = torch.stack([self.clouds[a] for a, _ in missing])
            y = torch.stack([self.clouds[b] for _, b in missing])
            values = batch_w2_squared(x, y, solver=self.solver).clamp_min(0).sqrt().tolist()
            self._cache.update(zip(missing, values, strict=True))
        n = len(ids)
        out = torch.full((n, n), float("nan"))
        for r, a in enumerate(ids):
            for c, b in enumerate(ids):
                if a == b:
                    out[r, c] = 0.0 if a in self.clouds else float("nan")
                elif (min(a, b), max(a, b)) in self._cache:
                    out[r, c] = self._cache[(min(a, b), max(a, b))]
        return out
