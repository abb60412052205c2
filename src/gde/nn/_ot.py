"""W2 targets for training: W2² between batches of point clouds, cached per pair of sets.

All values are W2² (or W2) with cost ``||x - y||²``, in (squared) data units; the solvers
are those of :mod:`gde._ot`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from gde._ot import sinkhorn_divergence, squared_distances, transport_cost

OTSolver = Literal["auto", "exact", "sinkhorn"]


def exact_w2_squared(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact W2² between uniform point clouds, pair by pair (:func:`gde.metrics.exact_w2`).

    Parameters
    ----------
    x, y
        Point clouds ``(B, n, d)`` and ``(B, m, d)``.

    Returns
    -------
    ``(B,)`` W2², squared data units, on ``x``'s device.
    """
    # in float64, which autocast leaves alone: under mixed precision x and y can differ
    costs = squared_distances(x.detach().double(), y.detach().double()).cpu().numpy()
    out = [transport_cost(c) for c in costs]
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
        ``"exact"`` (:func:`gde.metrics.exact_w2`), ``"sinkhorn"`` (debiased Sinkhorn) or
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

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The pairs computed so far and their W2, to resume a run with the same targets."""
        pairs = torch.tensor(list(self._cache), dtype=torch.long).reshape(-1, 2)
        return {"pairs": pairs, "w2": torch.tensor(list(self._cache.values()))}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the pairs of :meth:`state_dict`."""
        pairs = [(int(a), int(b)) for a, b in state["pairs"].tolist()]
        self._cache = dict(zip(pairs, state["w2"].tolist(), strict=True))

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
