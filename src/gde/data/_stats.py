"""Summary statistics of registered data used to initialise models."""

from __future__ import annotations

import numpy as np
from scipy import sparse


def batch_log_fold_changes(
    x, batch_codes: np.ndarray, n_batch: int, pseudocount: float = 0.1
) -> np.ndarray:
    """Log fold change of each gene's mean expression in each batch, against all batches.

    Expression is counts per 10,000; each batch weighs equally in the reference.

    Parameters
    ----------
    x
        Cells × genes counts (dense or sparse).
    batch_codes
        Batch code of each cell, ``0..n_batch-1``.
    n_batch
        Number of batches.
    pseudocount
        Added to the means (in counts per 10,000) before taking logs.

    Returns
    -------
    ``(n_batch, n_genes)`` log fold changes; zero for batches without cells.
    """
    batch_codes = np.asarray(batch_codes).ravel()
    totals = np.asarray(x.sum(axis=1)).ravel()
    scale = 1e4 / np.maximum(totals, 1.0)
    member = sparse.csr_matrix(
        (scale, (batch_codes, np.arange(len(batch_codes)))), shape=(n_batch, len(batch_codes))
    )
    sums = member @ x
    sums = sums.toarray() if sparse.issparse(sums) else np.asarray(sums)
    counts = np.bincount(batch_codes, minlength=n_batch)
    present = counts > 0
    means = sums[present] / counts[present, None]
    reference = np.log(means + pseudocount).mean(axis=0)
    out = np.zeros((n_batch, x.shape[1]))
    out[present] = np.log(means + pseudocount) - reference
    return out


def feature_moments(
    x, batch_codes: np.ndarray, n_batch: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and standard deviation of each feature, and per-batch shifts after standardising.

    Parameters
    ----------
    x
        Cells × features (dense or sparse).
    batch_codes
        Batch code of each cell, ``0..n_batch-1``.
    n_batch
        Number of batches.

    Returns
    -------
    ``mean`` and ``std`` (``(n_features,)``; ``std`` floored at 1e-6), and ``shift``
    (``(n_batch, n_features)``): each batch's mean of the standardised features, centred
    so that the batches average to zero (zero for batches without cells).
    """
    batch_codes = np.asarray(batch_codes).ravel()
    counts = np.bincount(batch_codes, minlength=n_batch)
    member = sparse.csr_matrix(
        (np.ones(len(batch_codes)), (batch_codes, np.arange(len(batch_codes)))),
        shape=(n_batch, len(batch_codes)),
    )
    sums = member @ x
    sq = member @ (x.multiply(x) if sparse.issparse(x) else np.asarray(x) ** 2)
    sums = sums.toarray() if sparse.issparse(sums) else np.asarray(sums)
    sq = sq.toarray() if sparse.issparse(sq) else np.asarray(sq)
    n = counts.sum()
    mean = sums.sum(0) / n
    std = np.sqrt(np.maximum(sq.sum(0) / n - mean**2, 0.0)).clip(min=1e-6)
    present = counts > 0
    shift = np.zeros((n_batch, x.shape[1]))
    shift[present] = (sums[present] / counts[present, None] - mean) / std
    shift[present] -= shift[present].mean(0)
    return mean, std, shift
