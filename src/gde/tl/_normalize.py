"""Log-normalisation shared by the comparisons of generated and real cells."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from gde.data._validation import is_count_matrix


def log_normalize(x, target_sum: float = 1e4, normalize: bool | None = True):
    """``log1p`` of counts scaled to ``target_sum`` per cell, or ``x`` as float.

    ``normalize=None`` normalises only when ``x`` holds non-negative integers (counts).
    Sparse input stays sparse (CSR); dense input is returned as a float64 array.
    """
    if normalize is None:
        normalize = is_count_matrix(x)
    if sparse.issparse(x):
        x = sparse.csr_matrix(x, dtype=np.float64)
        if not normalize:
            return x
        totals = np.asarray(x.sum(axis=1)).ravel()
        out = sparse.diags(target_sum / np.maximum(totals, 1.0)) @ x
        out = sparse.csr_matrix(out)
        out.data = np.log1p(out.data)
        return out
    x = np.asarray(x, dtype=np.float64)
    if not normalize:
        return x
    totals = x.sum(axis=1, keepdims=True)
    return np.log1p(x * (target_sum / np.maximum(totals, 1.0)))


def to_dense(x) -> np.ndarray:
    """A dense float64 copy of a dense or sparse matrix."""
    return x.toarray() if sparse.issparse(x) else np.asarray(x, dtype=np.float64)
