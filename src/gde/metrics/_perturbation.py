"""Perturbation prediction scores: mean deltas against control, and top DE genes.

All take mean expression vectors in one space (by convention mean log1p expression per
10,000 counts, :func:`gde.tl.perturbation_means`), so a *delta* is a perturbation's mean
minus the control's mean, in log1p units.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _vec(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).ravel()


def top_de_genes(true_mean, control_mean, n_top: int = 20) -> np.ndarray:
    """Indices of the ``n_top`` genes with the largest absolute true delta."""
    delta = _vec(true_mean) - _vec(control_mean)
    return np.argsort(-np.abs(delta), kind="stable")[:n_top]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denom) if denom > 0 else 0.0


def delta_pearson(pred_mean, true_mean, control_mean, genes=None) -> float:
    """Pearson r between predicted and true mean deltas against control.

    Parameters
    ----------
    pred_mean, true_mean, control_mean
        Mean expression vectors (genes).
    genes
        Indices of the genes to score (e.g. :func:`top_de_genes`); all by default.

    Returns
    -------
    r in [-1, 1]; 0 where either delta is constant (a "no change" prediction).
    """
    ctrl = _vec(control_mean)
    pred, true = _vec(pred_mean) - ctrl, _vec(true_mean) - ctrl
    if genes is not None:
        pred, true = pred[genes], true[genes]
    return _pearson(pred, true)


def direction_accuracy(pred_mean, true_mean, control_mean, genes) -> float:
    """Share of ``genes`` whose predicted delta has the true delta's sign (0-1)."""
    ctrl = _vec(control_mean)
    pred, true = _vec(pred_mean)[genes] - ctrl[genes], _vec(true_mean)[genes] - ctrl[genes]
    return float(np.mean(np.sign(pred) == np.sign(true)))


def perturbation_scores(pred_mean, true_mean, control_mean, n_top: int = 20) -> dict:
    """The field's standard scores of one predicted perturbation, side by side.

    Parameters
    ----------
    pred_mean, true_mean, control_mean
        Mean expression vectors (genes), log1p units.
    n_top
        Number of top differentially expressed genes (largest absolute true delta).

    Returns
    -------
    ``"pearson delta"`` (all genes) and ``"pearson delta, top DEGs"`` (r); ``"r2 delta"``
    (squared Pearson r of the deltas over all genes, the GDE paper's R²); ``"mse"`` (mean
    squared error of the means over all genes, log1p units²); ``"direction, top DEGs"``
    (share of the top DEGs whose change has the right sign).
    """
    top = top_de_genes(true_mean, control_mean, n_top)
    r = delta_pearson(pred_mean, true_mean, control_mean)
    return {
        "pearson delta": r,
        "pearson delta, top DEGs": delta_pearson(pred_mean, true_mean, control_mean, top),
        "r2 delta": r**2,
        "mse": float(np.mean((_vec(pred_mean) - _vec(true_mean)) ** 2)),
        "direction, top DEGs": direction_accuracy(pred_mean, true_mean, control_mean, top),
    }


def perturbation_score_table(
    predicted: pd.DataFrame, observed: pd.DataFrame, control_mean, n_top: int = 20
) -> pd.DataFrame:
    """:func:`perturbation_scores` for every row of ``predicted`` (perturbations × genes).

    ``observed`` must hold a row of the same label for each (its true mean); columns of
    both are matched by gene name.
    """
    missing = [p for p in predicted.index if p not in observed.index]
    if missing:
        raise KeyError(f"No observed mean for {missing[:5]}.")
    genes = predicted.columns
    ctrl = pd.Series(_vec(control_mean), index=observed.columns)[genes].to_numpy()
    rows = {
        p: perturbation_scores(
            predicted.loc[p].to_numpy(), observed.loc[p, genes].to_numpy(), ctrl, n_top
        )
        for p in predicted.index
    }
    return pd.DataFrame(rows).T
