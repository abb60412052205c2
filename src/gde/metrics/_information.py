"""Mutual information between paired samples: the KSG k-nearest-neighbour estimator."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist
from scipy.special import digamma

_METRICS = ("chebyshev", "euclidean")
#: most paired samples the estimator takes (it holds two n × n distance matrices)
MAX_SAMPLES = 10_000


def _as_samples(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"`{name}` must be 1-D or 2-D (samples × features), got {x.ndim}-D.")
    if not np.isfinite(x).all():
        raise ValueError(f"`{name}` holds NaN or infinite values; drop those samples first.")
    return x


def _check(x, y, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_samples(x, "x"), _as_samples(y, "y")
    if len(x) != len(y):
        raise ValueError(f"x and y must pair up: {len(x)} samples in x, {len(y)} in y.")
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}.")
    if not 1 <= k < len(x) - 1:
        raise ValueError(f"Need 1 <= k < n_samples - 1; got k={k} with {len(x)} samples.")
    if len(x) > MAX_SAMPLES:
        raise ValueError(
            f"{len(x)} paired samples; the estimator holds n × n distances and takes at "
            f"most {MAX_SAMPLES}. Subsample the pairs first."
        )
    return x, y


def _pointwise_nats(dx: np.ndarray, dy: np.ndarray, k: int) -> np.ndarray:
    """KSG algorithm 1 from the marginal distance matrices (diagonals set to inf)."""
    joint = np.maximum(dx, dy)  # max-norm over the two spaces
    eps = np.partition(joint, k - 1, axis=1)[:, k - 1]  # distance to the k-th neighbour
    n_x = (dx < eps[:, None]).sum(1)
    n_y = (dy < eps[:, None]).sum(1)
    n = len(dx)
    return digamma(k) + digamma(n) - digamma(n_x + 1) - digamma(n_y + 1)


def _distances(x: np.ndarray, metric: str) -> np.ndarray:
    d = cdist(x, x, metric=metric)
    np.fill_diagonal(d, np.inf)
    return d


def ksg_mutual_information(
    x, y, *, k: int = 3, metric: str = "chebyshev", pointwise: bool = False
) -> float | tuple[float, np.ndarray]:
    """Mutual information between paired samples, KSG estimator, in bits.

    Kraskov, Stögbauer & Grassberger (2004), algorithm 1: for each pair, the distance
    ``eps`` to its ``k``-th nearest neighbour in the joint space (the larger of the two
    marginal distances) and the numbers ``n_x``, ``n_y`` of samples closer than ``eps``
    in each space give ``ψ(k) + ψ(n) − ψ(n_x + 1) − ψ(n_y + 1)`` (nats; divided by ln 2
    here). Its mean is the estimate; the terms are pointwise mutual information. The
    estimate is close to unbiased in low dimension and biased towards zero as the
    dimension grows, so compare estimates made in the same dimension.

    Parameters
    ----------
    x, y
        Paired samples, ``(n,)`` or ``(n, d_x)`` and ``(n, d_y)``: row ``i`` of ``x`` and
        row ``i`` of ``y`` belong together (e.g. a clone's early and late embedding).
    k
        Neighbours (3 is the usual choice: low bias, more variance).
    metric
        Distance within each space: ``"chebyshev"`` (max-norm, the original) or
        ``"euclidean"``.
    pointwise
        Also return each pair's pointwise mutual information (bits).

    Returns
    -------
    The estimate in bits, or ``(estimate, pointwise)``.
    """
    x, y = _check(x, y, k, metric)
    local = _pointwise_nats(_distances(x, metric), _distances(y, metric), k) / np.log(2)
    mi = float(local.mean())
    return (mi, local) if pointwise else mi


def mutual_information_test(
    x,
    y,
    *,
    k: int = 3,
    metric: str = "chebyshev",
    n_permutations: int = 200,
    seed: int = 0,
) -> dict:
    """KSG mutual information with a permutation p-value.

    The null shuffles the pairing (row ``i`` of ``x`` with a random row of ``y``), which
    keeps both marginals and removes any dependence; the p-value is
    ``(1 + #{null >= observed}) / (1 + n_permutations)``.

    Parameters
    ----------
    x, y, k, metric
        As in :func:`ksg_mutual_information`.
    n_permutations
        Shuffles in the null (``0``: no test).
    seed
        Seed of the shuffles.

    Returns
    -------
    ``{"mi_bits", "pointwise_bits", "null_bits", "p_value"}``: the estimate, each pair's
    pointwise value, the null estimates and the p-value (``nan`` without permutations).
    """
    x, y = _check(x, y, k, metric)
    dx, dy = _distances(x, metric), _distances(y, metric)
    local = _pointwise_nats(dx, dy, k) / np.log(2)
    mi = float(local.mean())
    rng = np.random.default_rng(seed)
    null = np.empty(n_permutations)
    for b in range(n_permutations):
        perm = rng.permutation(len(y))
        null[b] = _pointwise_nats(dx, dy[np.ix_(perm, perm)], k).mean() / np.log(2)
    p = (1 + int((null >= mi).sum())) / (1 + n_permutations) if n_permutations else np.nan
    return {"mi_bits": mi, "pointwise_bits": local, "null_bits": null, "p_value": float(p)}
