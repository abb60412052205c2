"""Summary statistics of registered data used to initialise models."""

from __future__ import annotations

import itertools

import numpy as np
from scipy import sparse

from gde._anndata_utils import group_membership, to_dense
from gde._pca import principal_components


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
    member = group_membership(batch_codes, n_batch, weights=scale)
    sums = member @ x
    sums = to_dense(sums)
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
    member = group_membership(batch_codes, n_batch)
    sums = member @ x
    sq = member @ (x.multiply(x) if sparse.issparse(x) else np.asarray(x) ** 2)
    sums = to_dense(sums)
    sq = to_dense(sq)
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
        sub = to_dense(sub)
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
