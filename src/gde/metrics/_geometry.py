"""How well distances between set embeddings track known structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial.distance import pdist, squareform
from scipy.stats import rankdata, spearmanr


def pairwise_distances(
    embeddings: pd.DataFrame | np.ndarray, metric: str = "euclidean"
) -> np.ndarray:
    """Distances between the rows of ``embeddings``, ``(n_sets, n_sets)``, zero diagonal.

    ``metric`` is any metric of :func:`scipy.spatial.distance.pdist`.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if len(x) < 2:
        return np.zeros((len(x), len(x)))
    return squareform(pdist(x, metric=metric))


def _upper(d: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    iu = np.triu_indices(d.shape[0], k=1)
    values = np.asarray(d)[iu]
    return values if mask is None else values[np.asarray(mask)[iu]]


# fewest set pairs a rank correlation is reported from
MIN_PAIRS = 10


def distance_spearman(
    embeddings: pd.DataFrame | np.ndarray,
    true_distances: pd.DataFrame | np.ndarray,
    pair_mask: np.ndarray | None = None,
    *,
    precomputed: bool = False,
    min_pairs: int = MIN_PAIRS,
) -> float:
    """Spearman correlation between embedding distances and true distances over set pairs.

    Parameters
    ----------
    embeddings
        ``(n_sets, n_latent)``; if both arguments are DataFrames, the true distances are
        aligned to the embedding's row order by name.
    true_distances
        ``(n_sets, n_sets)`` ground-truth distances.
    pair_mask
        Optional boolean ``(n_sets, n_sets)`` matrix selecting the pairs to score.
    precomputed
        ``embeddings`` is already a ``(n_sets, n_sets)`` distance matrix (e.g. from
        :func:`gde.tl.wasserstein_distances`).
    min_pairs
        Fewest pairs to report a correlation from (10: 5 sets); fewer raise a
        ``ValueError``, since a rank correlation over a handful of pairs is mostly noise.

    Returns
    -------
    Spearman's rho over the selected pairs ``i < j``.
    """
    if isinstance(embeddings, pd.DataFrame) and isinstance(true_distances, pd.DataFrame):
        true_distances = true_distances.loc[embeddings.index, embeddings.index]
    d_emb = _upper(_set_distances(embeddings, precomputed), pair_mask)
    d_true = _upper(np.asarray(true_distances, dtype=np.float64), pair_mask)
    if len(d_emb) < min_pairs:
        raise ValueError(
            f"Only {len(d_emb)} set pairs to correlate; a Spearman correlation over fewer "
            f"than min_pairs={min_pairs} pairs is mostly noise. Score more sets (5 sets "
            "give 10 pairs), or lower `min_pairs` knowingly."
        )
    return float(spearmanr(d_emb, d_true).statistic)


def _set_distances(embeddings, precomputed: bool) -> np.ndarray:
    if not precomputed:
        return pairwise_distances(embeddings)
    d = np.asarray(embeddings, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"precomputed distances must be a square matrix, got shape {d.shape}.")
    return d


def same_label_auc(
    embeddings: pd.DataFrame | np.ndarray,
    labels: np.ndarray | pd.Series,
    pair_mask: np.ndarray | None = None,
    *,
    precomputed: bool = False,
) -> float:
    """ROC-AUC that a smaller embedding distance means the two sets share a label.

    1 means every same-label pair is closer than every different-label pair; 0.5 is
    chance. For a nuisance label (batch), lower is better.

    Parameters
    ----------
    embeddings
        ``(n_sets, n_latent)``, or a ``(n_sets, n_sets)`` distance matrix if
        ``precomputed``.
    labels
        Label of each set (donor, batch, ...).
    pair_mask
        Optional boolean ``(n_sets, n_sets)`` matrix selecting the pairs to score.
    precomputed
        ``embeddings`` holds distances (e.g. from :func:`gde.tl.wasserstein_distances`).
    """
    labels = np.asarray(labels)
    same = _upper(labels[:, None] == labels[None, :], pair_mask)
    score = -_upper(_set_distances(embeddings, precomputed), pair_mask)
    n_pos, n_neg = int(same.sum()), int((~same).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("same_label_auc needs both same-label and different-label pairs.")
    ranks = rankdata(score)
    return float((ranks[same].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def nearest_same_label(
    embeddings: pd.DataFrame | np.ndarray,
    labels: np.ndarray | pd.Series,
    *,
    precomputed: bool = False,
) -> float:
    """Fraction of sets whose nearest other set shares their label.

    Only sets with at least one other set of the same label count (e.g. the samples of
    donors sampled more than once). Chance is about the share of same-label sets among
    the others.

    Parameters
    ----------
    embeddings
        ``(n_sets, n_latent)``, or a ``(n_sets, n_sets)`` distance matrix if
        ``precomputed``.
    labels
        Label of each set (donor, clone, ...).
    precomputed
        ``embeddings`` holds distances.
    """
    labels = np.asarray(labels)
    d = _set_distances(embeddings, precomputed).copy()
    if len(labels) != len(d):
        raise ValueError(f"{len(labels)} labels for {len(d)} sets.")
    np.fill_diagonal(d, np.inf)
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    has_partner = same.any(axis=1)
    if not has_partner.any():
        raise ValueError("nearest_same_label needs at least two sets sharing a label.")
    nearest = d.argmin(axis=1)
    return float((labels[nearest] == labels)[has_partner].mean())
