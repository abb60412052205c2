"""Ridge regression of perturbation shifts on feature blocks, penalties by leave-one-out.

The design of a perturbation is made of blocks of columns (a feature table, a multi-hot
of its perturbed genes), each with its own penalty. With no penalty given, the penalties
are chosen from :data:`PENALTIES` (every block against every other) by the closed-form
leave-one-out error over the training perturbations, so that a block that does not
help is shrunk away and one that does is let through.
"""

from __future__ import annotations

from itertools import product

import numpy as np

#: penalties tried for each block of columns
PENALTIES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


def _solve(x: np.ndarray, y: np.ndarray, penalty: np.ndarray):
    """Ridge with an unpenalised intercept: ``(intercept, weights, leave-one-out error)``.

    The leave-one-out residual of row i is ``r_i / (1 - h_ii)`` with ``h`` the hat matrix
    of the centred design; the error is their sum of squares over that of ``y`` about
    its mean (0: perfect, 1: no better than the mean).
    """
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    # (X'X + P)^-1 X', once: it gives both the weights and the hat matrix's diagonal
    proj = np.linalg.solve(xc.T @ xc + np.diag(penalty), xc.T)
    w = proj @ yc
    hat = np.einsum("ij,ji->i", xc, proj)
    # centring takes 1/n of each row's leverage
    resid = (yc - xc @ w) / np.clip(1.0 - hat - 1.0 / len(x), 1e-6, None)[:, None]
    total = float((yc**2).sum())
    loo = float((resid**2).sum() / total) if total > 0 else 0.0
    return my - mx @ w, w, loo


def fit_blocks(
    blocks: list[np.ndarray], y: np.ndarray, alpha: float | None = None
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fit ``y`` on the column blocks; returns ``(intercept, weights, choice)``.

    Parameters
    ----------
    blocks
        Arrays ``(n, k_b)`` with the same rows.
    y
        Targets ``(n, d)``.
    alpha
        One penalty for every column; ``None`` to choose each block's penalty by
        leave-one-out (needs at least 3 rows; fewer use 1).

    Returns
    -------
    Intercept ``(d,)``, weights ``(sum k_b, d)`` in the order of the blocks, and the
    choice: ``{"penalties": [...], "loo_error": ...}``.
    """
    x = np.hstack([np.asarray(b, np.float64) for b in blocks])
    y = np.asarray(y, np.float64)
    sizes = [np.asarray(b).shape[1] for b in blocks]
    if alpha is not None or len(x) < 3:
        grid = [(1.0 if alpha is None else float(alpha),) * len(blocks)]
    else:
        grid = list(product(PENALTIES, repeat=len(blocks)))
    best = None
    for penalties in grid:
        fit = _solve(x, y, np.repeat(penalties, sizes))
        if best is None or fit[2] < best[0][2]:
            best = (fit, penalties)
    (intercept, w, loo), penalties = best
    return intercept, w, {"penalties": [float(p) for p in penalties], "loo_error": loo}
