"""Principal components of (possibly sparse) observations × features.

Rows are centred implicitly, so a sparse matrix is never densified: :func:`pca` is exact
and deterministic (plots, the pseudobulk baseline), :func:`principal_components` a
randomised SVD (the model's reference space, on many cells).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import LinearOperator, svds

from gde._anndata_utils import group_membership

_DENSE_LIMIT = 20_000_000  # entries; larger matrices use ARPACK on the centred operator

Product = Callable[[np.ndarray], np.ndarray]


def _centred_products(
    x, mean: np.ndarray, row_offsets: np.ndarray | None = None, groups: np.ndarray | None = None
) -> tuple[Product, Product]:
    """``(right, left)``: products of the centred rows of ``x`` with dense matrices.

    The centred rows are ``x[i] - mean`` (minus ``row_offsets[groups[i]]`` if given);
    ``right(v)`` is their product with ``v`` ``(n_features, w)`` → ``(n, w)``, ``left(q)``
    that of their transpose with ``q`` ``(n, w)`` → ``(n_features, w)``.
    """
    if row_offsets is not None:
        member = group_membership(groups, row_offsets.shape[0])  # (n_groups, n)

    def right(v):
        out = np.asarray(x @ v) - mean @ v
        return out if row_offsets is None else out - (row_offsets @ v)[groups]

    def left(q):
        out = np.asarray(x.T @ q) - np.outer(mean, q.sum(axis=0))
        return out if row_offsets is None else out - row_offsets.T @ (member @ q)

    return right, left


def _flip(v: np.ndarray) -> np.ndarray:
    """Make the largest-magnitude loading of each component positive."""
    top = np.abs(v).argmax(axis=0)
    return v * np.sign(v[top, np.arange(v.shape[1])])


def pca(
    x, n_comps: int = 2, *, flip_signs: bool = False, dense_limit: int | None = _DENSE_LIMIT
) -> tuple[np.ndarray, np.ndarray]:
    """Exact principal axes of the rows of ``x``, deterministic.

    Parameters
    ----------
    x
        Observations × features, dense or sparse.
    n_comps
        Number of components; missing ones (fewer rows or features) are zero columns.
    flip_signs
        Make the largest-magnitude loading of each component positive (otherwise the
        signs are those of the SVD).
    dense_limit
        Largest number of entries decomposed by :func:`numpy.linalg.svd`; larger matrices
        use ARPACK, with a fixed start vector, on the implicitly centred rows. ``None``:
        always :func:`numpy.linalg.svd`.

    Returns
    -------
    ``mean`` ``(n_features,)`` and ``loadings`` ``(n_features, n_comps)``.
    """
    n, g = x.shape
    mean = np.asarray(x.mean(axis=0), dtype=np.float64).ravel()
    if dense_limit is None or n * g <= dense_limit or min(n, g) <= n_comps + 1:
        dense = x.toarray() if sparse.issparse(x) else np.asarray(x, dtype=np.float64)
        _, _, vt = np.linalg.svd(dense - mean, full_matrices=False)
        v = vt[:n_comps].T
    else:
        right, left = _centred_products(x, mean)
        centred = LinearOperator(
            (n, g),
            matvec=lambda b: right(b.reshape(g, -1)),
            rmatvec=lambda b: left(b.reshape(n, -1)),
            matmat=lambda b: right(b.reshape(g, -1)),
            rmatmat=lambda b: left(b.reshape(n, -1)),
            dtype=np.float64,
        )
        _, s, vt = svds(centred, k=n_comps, v0=np.full(min(n, g), 1.0 / np.sqrt(min(n, g))))
        v = vt[np.argsort(-s)].T
    if v.shape[1] < n_comps:  # fewer rows or features than components
        v = np.hstack([v, np.zeros((g, n_comps - v.shape[1]))])
    return mean, _flip(v) if flip_signs else v


def project(x, mean: np.ndarray, loadings: np.ndarray) -> np.ndarray:
    """Coordinates of the rows of ``x`` on fitted components ``(n, n_comps)``."""
    return np.asarray(x @ loadings) - mean @ loadings


def principal_components(
    x,
    n_comps: int,
    n_iter: int = 4,
    seed: int = 0,
    row_offsets: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top principal axes of the rows of ``x`` (dense or sparse), by a randomised SVD.

    Parameters
    ----------
    x
        Observations × features.
    n_comps
        Number of components (at most the number of features and of rows).
    n_iter
        Power iterations of the range finder.
    seed
        Seed of the random projection.
    row_offsets, groups
        Analyse ``x[i] - row_offsets[groups[i]]`` instead of ``x``: ``row_offsets`` is
        ``(n_groups, n_features)``, ``groups`` the group code of each row.

    Returns
    -------
    ``center`` (``(n_features,)``, the mean row) and ``components`` (``(n_features, k)``,
    orthonormal columns ordered by decreasing variance).
    """
    n, g = x.shape
    k = int(min(n_comps, n, g))
    mean = np.asarray(x.mean(axis=0), dtype=np.float64).ravel()
    if row_offsets is not None:
        groups = np.asarray(groups).ravel()
        row_offsets = np.asarray(row_offsets, dtype=np.float64)
        counts = np.bincount(groups, minlength=row_offsets.shape[0])
        mean = mean - counts @ row_offsets / n
    right, left = _centred_products(x, mean, row_offsets, groups)
    rng = np.random.default_rng(seed)
    width = min(g, k + 10)
    basis = np.linalg.qr(right(rng.normal(size=(g, width))))[0]
    for _ in range(n_iter):
        basis = np.linalg.qr(right(np.linalg.qr(left(basis))[0]))[0]
    # (width, g) projection of the centred rows on the range basis
    small = left(basis).T
    _, _, vt = np.linalg.svd(small, full_matrices=False)
    return mean, vt[:k].T


def reference_rows(n: int, max_rows: int, seed: int, salt: int) -> np.ndarray:
    """Sorted random rows (at most ``max_rows`` of ``n``) for reference statistics."""
    rng = np.random.default_rng([seed, salt])
    return np.sort(rng.choice(n, min(n, max_rows), replace=False))


def reference_statistics(values: np.ndarray, n_comps: int, *, standardise: bool) -> dict:
    """Mean, sd and principal axes of reference features, as the set modules take them.

    Parameters
    ----------
    values
        Reference elements × features (dense).
    n_comps
        Number of principal axes.
    standardise
        Find the axes of the standardised features (each feature divided by its sd) and
        express them on the raw ones (``loadings / sd``), so that features on large scales
        do not dominate; otherwise the axes of the raw features.

    Returns
    -------
    ``reference_mean``, ``reference_std``, ``reference_components`` (``(n_features,
    n_comps)``, applied to ``values - reference_center``) and ``reference_center``.
    """
    values = np.asarray(values, dtype=np.float64)
    mean, std = values.mean(0), values.std(0)
    std = np.where(std > 1e-6, std, 1.0)
    if standardise:
        _, loadings = pca((values - mean) / std, n_comps)
        components = loadings / std[:, None]
    else:
        _, loadings = pca(values, n_comps)
        components = loadings
    return {
        "reference_mean": mean,
        "reference_std": std,
        "reference_components": components,
        "reference_center": mean,
    }
