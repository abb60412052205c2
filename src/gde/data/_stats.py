"""Summary statistics of registered data used to initialise models."""

from __future__ import annotations

import itertools

import numpy as np
from scipy import sparse


def _blocks(x, segments):
    if segments is None:
        return [x]
    x = sparse.csc_matrix(x) if sparse.issparse(x) else np.asarray(x)
    edges = np.cumsum([0, *segments])
    return [x[:, a:b] for a, b in itertools.pairwise(edges)]


def log_library_sizes(x, segments=None) -> np.ndarray:
    """Log total counts of each cell in each block of features, ``(n_cells, n_blocks)``.

    Totals below 1 count as 1. ``segments`` as in :func:`library_log_stats`.
    """
    totals = [np.asarray(block.sum(axis=1)).ravel() for block in _blocks(x, segments)]
    return np.log(np.maximum(np.stack(totals, axis=1), 1.0))


def library_log_stats(
    x, batch_codes: np.ndarray, n_batch: int, segments=None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the log library size per batch (and per modality).

    Parameters
    ----------
    x
        Cells × features counts (dense or sparse).
    batch_codes
        Batch code of each cell, ``0..n_batch-1``.
    n_batch
        Number of batches.
    segments
        Sizes of consecutive blocks of features with their own library size (genes, then
        proteins); ``None``: one block.

    Returns
    -------
    Two ``(n_batch, n_blocks)`` arrays; mean 0 and variance 1 for batches without cells.
    """
    batch_codes = np.asarray(batch_codes).ravel()
    logs = log_library_sizes(x, segments)
    means = np.zeros((n_batch, logs.shape[1]))
    variances = np.ones((n_batch, logs.shape[1]))
    for k in range(logs.shape[1]):
        for b in np.unique(batch_codes):
            values = logs[batch_codes == b, k]
            means[b, k] = values.mean()
            variances[b, k] = values.var() if len(values) > 1 else 1.0
    return means, variances


def batch_log_fold_changes(
    x, batch_codes: np.ndarray, n_batch: int, pseudocount: float = 0.1, segments=None
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
    segments
        Sizes of consecutive blocks of features normalised separately (genes, then
        proteins); ``None``: one block.

    Returns
    -------
    ``(n_batch, n_genes)`` log fold changes; zero for batches without cells.
    """
    if segments is not None:
        parts = [
            batch_log_fold_changes(b, batch_codes, n_batch, pseudocount)
            for b in _blocks(x, segments)
        ]
        return np.concatenate(parts, axis=1)
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


def nb_log_theta(x, segments=None, low: float = 0.1, high: float = 1000.0) -> np.ndarray:
    """Moment estimate of each feature's NB inverse dispersion, on the log scale.

    Each cell's counts are scaled to the median library size (per block of features);
    then ``theta = mean² / (variance - mean)`` per feature, clipped to ``[low, high]``
    (``high`` where the variance does not exceed the mean). Variation between cell
    states counts as overdispersion, so this errs towards small ``theta``; it starts
    the count decoder's dispersion at the right scale, which a few thousand optimiser
    steps from a random start do not reach.

    Parameters
    ----------
    x
        Cells × features counts (dense or sparse).
    segments
        Sizes of consecutive blocks of features with their own library size.
    low, high
        Bounds of ``theta``.

    Returns
    -------
    ``(n_features,)`` log inverse dispersions.
    """
    out = []
    for block in _blocks(x, segments):
        block = sparse.csr_matrix(block, dtype=np.float64)
        totals = np.asarray(block.sum(axis=1)).ravel()
        scale = np.median(totals[totals > 0]) / np.maximum(totals, 1.0)
        scaled = sparse.diags(scale) @ block
        mean = np.asarray(scaled.mean(axis=0)).ravel()
        var = np.asarray(scaled.multiply(scaled).mean(axis=0)).ravel() - mean**2
        excess = var - mean
        theta = np.where(excess > 0, mean**2 / np.maximum(excess, 1e-12), high)
        out.append(np.log(np.clip(theta, low, high)))
    return np.concatenate(out)


def principal_components(
    x,
    n_comps: int,
    n_iter: int = 4,
    seed: int = 0,
    row_offsets: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top principal axes of the rows of ``x`` (dense or sparse), by a randomised SVD.

    Rows are centred implicitly, so a sparse ``x`` is never densified.

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
        n_groups = row_offsets.shape[0]
        member = sparse.csr_matrix(
            (np.ones(n), (groups, np.arange(n))), shape=(n_groups, n)
        )  # (n_groups, n) sums rows by group
        mean = mean - np.bincount(groups, minlength=n_groups) @ row_offsets / n
    rng = np.random.default_rng(seed)
    width = min(g, k + 10)

    def right(v):  # centred rows times v, (n, width), without forming the rows
        out = np.asarray(x @ v) - mean @ v
        return out if row_offsets is None else out - (row_offsets @ v)[groups]

    def left(q):  # centred rows transposed times q, (g, width)
        out = np.asarray(x.T @ q) - np.outer(mean, q.sum(axis=0))
        return out if row_offsets is None else out - row_offsets.T @ (member @ q)

    basis = np.linalg.qr(right(rng.normal(size=(g, width))))[0]
    for _ in range(n_iter):
        basis = np.linalg.qr(right(np.linalg.qr(left(basis))[0]))[0]
    # (width, g) projection of the centred rows on the range basis
    small = left(basis).T
    _, _, vt = np.linalg.svd(small, full_matrices=False)
    return mean, vt[:k].T


def reference_space(
    x,
    batch_codes: np.ndarray,
    n_comps: int,
    batch_offsets: np.ndarray | None = None,
    segments=None,
    counts: bool = True,
    batch_shift: np.ndarray | None = None,
    max_cells: int = 20000,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Batch-free units for the set encoder and the principal axes of the cells in them.

    Counts are divided by the per-batch gene fold changes ``batch_offsets`` (log scale),
    scaled to 10,000 per cell (per block of features) and ``log1p``-transformed; what is
    left of each batch's mean there (zeros and small counts do not scale) is the
    per-batch ``log_batch_shift``, centred so that batches average to zero, and is
    subtracted. Continuous features have the per-batch ``batch_shift`` (data units)
    subtracted. At most ``max_cells`` random cells are used.

    Returns
    -------
    ``center`` ``(n_features,)``, ``components`` ``(n_features, k)`` and, for counts,
    ``log_batch_shift`` ``(n_batch, n_features)``.
    """
    batch_codes = np.asarray(batch_codes).ravel()
    rng = np.random.default_rng(seed)
    rows = np.arange(x.shape[0])
    if len(rows) > max_cells:
        rows = np.sort(rng.choice(rows, max_cells, replace=False))
    b = batch_codes[rows]
    sub = x[rows]
    out = {}
    if counts:
        sub = sparse.csr_matrix(sub, dtype=np.float64, copy=True)
        if batch_offsets is not None:
            # each stored entry (row r, gene g) divided by exp(offset[batch of r, g])
            entry_rows = np.repeat(np.arange(sub.shape[0]), np.diff(sub.indptr))
            sub.data *= np.exp(-np.asarray(batch_offsets)[b[entry_rows], sub.indices])
        blocks = []
        for block in _blocks(sub, segments):
            block = sparse.csr_matrix(block)
            totals = np.asarray(block.sum(axis=1)).ravel()
            block = sparse.csr_matrix(sparse.diags(1e4 / np.maximum(totals, 1e-8)) @ block)
            block.data = np.log1p(block.data)
            blocks.append(block)
        sub = sparse.hstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]
        n_batch = int(batch_codes.max()) + 1 if len(batch_codes) else 1
        shift = np.zeros((n_batch, sub.shape[1]))
        present = np.unique(b)
        if len(present) > 1:
            for k in present:
                shift[k] = np.asarray(sub[b == k].mean(axis=0)).ravel()
            shift[present] -= shift[present].mean(axis=0)
        out["log_batch_shift"] = shift
    else:
        sub = sub.toarray() if sparse.issparse(sub) else np.asarray(sub, dtype=np.float64)
        shift = batch_shift
    out["center"], out["components"] = principal_components(
        sub, n_comps, seed=seed, row_offsets=shift, groups=b
    )
    return out


def cell_statistics(
    x,
    batch_codes: np.ndarray,
    n_batch: int,
    is_counts: bool,
    n_comps: int,
    segments=None,
    seed: int = 0,
) -> dict:
    """Everything a cell model's module is initialised from, computed once from the data.

    Counts: per-batch log library-size moments, NB inverse dispersions, per-batch gene
    fold changes (with several batches) and the modality sizes (``segments``); continuous
    features: means, standard deviations and per-batch shifts. Both: the reference space
    of :func:`reference_space` (``reference_center``, ``reference_components``; for counts
    with several batches also ``log_batch_shift`` and the fold changes it was computed
    with, ``reference_batch_offset``).
    """
    if is_counts:
        means, log_vars = library_log_stats(x, batch_codes, n_batch, segments)
        stats = {
            "library_log_means": means,
            "library_log_vars": log_vars,
            "log_theta_init": nb_log_theta(x, segments),
        }
        if segments is not None:
            stats["modality_sizes"] = segments
        if n_batch > 1:
            stats["batch_offset_init"] = batch_log_fold_changes(
                x, batch_codes, n_batch, segments=segments
            )
    else:
        mean, std, shift = feature_moments(x, batch_codes, n_batch)
        stats = {"feature_mean": mean, "feature_std": std, "batch_shift": shift}
    reference = reference_space(
        x,
        batch_codes,
        n_comps,
        batch_offsets=stats.get("batch_offset_init"),
        segments=segments,
        counts=is_counts,
        batch_shift=None if is_counts else stats["batch_shift"] * stats["feature_std"],
        seed=seed,
    )
    stats["reference_center"] = reference["center"]
    stats["reference_components"] = reference["components"]
    if is_counts and n_batch > 1:
        stats["log_batch_shift"] = reference["log_batch_shift"]
        stats["reference_batch_offset"] = stats["batch_offset_init"]
    return stats
