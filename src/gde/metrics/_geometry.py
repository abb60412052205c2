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


def distance_spearman(
    embeddings: pd.DataFrame | np.ndarray,
    true_distances: pd.DataFrame | np.ndarray,
    pair_mask: np.ndarray | None = None,
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

    Returns
    -------
    Spearman's rho over the selected pairs ``i < j``.
    """
    if isinstance(embeddings, pd.DataFrame) and isinstance(true_distances, pd.DataFrame):
        true_distances = true_distances.loc[embeddings.index, embeddings.index]
    d_emb = _upper(pairwise_distances(embeddings), pair_mask)
    d_true = _upper(np.asarray(true_distances, dtype=np.float64), pair_mask)
    return float(spearmanr(d_emb, d_true).statistic)


def same_label_auc(
    embeddings: pd.DataFrame | np.ndarray,
    labels: np.ndarray | pd.Series,
    pair_mask: np.ndarray | None = None,
) -> float:
    """ROC-AUC that a smaller embedding distance means the two sets share a label.

    1 means every same-label pair is closer than every different-label pair; 0.5 is
    chance. For a nuisance label (batch), lower is better.

    Parameters
    ----------
    embeddings
        ``(n_sets, n_latent)``.
    labels
        Label of each set (donor, batch, ...).
    pair_mask
        Optional boolean ``(n_sets, n_sets)`` matrix selecting the pairs to score.
    """
    labels = np.asarray(labels)
    same = _upper(labels[:, None] == labels[None, :], pair_mask)
    score = -_upper(pairwise_distances(embeddings), pair_mask)
    n_pos, n_neg = int(same.sum()), int((~same).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("same_label_auc needs both same-label and different-label pairs.")
    ranks = rankdata(score)
    return float((ranks[same].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
