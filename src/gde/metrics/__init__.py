"""Metrics that compare set embeddings with ground truth."""

from ._geometry import distance_spearman, pairwise_distances, same_label_auc

__all__ = ["distance_spearman", "pairwise_distances", "same_label_auc"]
