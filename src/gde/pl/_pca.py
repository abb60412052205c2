"""Deterministic two-component PCA of (possibly sparse) cells × genes."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import LinearOperator, svds

_DENSE_LIMIT = 20_000_000  # entries; larger matrices use ARPACK on the centred operator


def _flip(v: np.ndarray) -> np.ndarray:
    """Make the largest-magnitude loading of each component positive."""
    top = np.abs(v).argmax(axis=0)
    return v * np.sign(v[top, np.arange(v.shape[1])])


def fit_pca(x, n_comps: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(n_genes,)`` and loadings ``(n_genes, n_comps)`` of the rows of ``x``.

    Small matrices use :func:`numpy.linalg.svd`; large ones ARPACK with a fixed start
    vector, so the result is deterministic either way.
    """
    n, g = x.shape
    mean = np.asarray(x.mean(axis=0), dtype=np.float64).ravel()
    if n * g <= _DENSE_LIMIT or min(n, g) <= n_comps + 1:
        dense = x.toarray() if sparse.issparse(x) else np.asarray(x, dtype=np.float64)
        _, _, vt = np.linalg.svd(dense - mean, full_matrices=False)
        v = vt[:n_comps].T
    else:

        def matmat(b):
            b = b.reshape(g, -1)
            return x @ b - mean @ b

        def rmatmat(b):
            b = b.reshape(n, -1)
            return x.T @ b - np.outer(mean, b.sum(axis=0))

        centred = LinearOperator(
            (n, g),
            matvec=matmat,
            rmatvec=rmatmat,
            matmat=matmat,
            rmatmat=rmatmat,
            dtype=np.float64,
        )
        _, s, vt = svds(centred, k=n_comps, v0=np.full(min(n, g), 1.0 / np.sqrt(min(n, g))))
        v = vt[np.argsort(-s)].T
    if v.shape[1] < n_comps:  # fewer cells or genes than components
        v = np.hstack([v, np.zeros((g, n_comps - v.shape[1]))])
    return mean, _flip(v)


def project(x, mean: np.ndarray, loadings: np.ndarray) -> np.ndarray:
    """Coordinates of the rows of ``x`` on the fitted components."""
    return np.asarray(x @ loadings) - mean @ loadings
