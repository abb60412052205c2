"""Metrics: embedding geometry against ground truth, W2 and OT, generated vs real data."""

from gde._ot import exact_w2

from ._gaussian import (
    bures_squared,
    gaussian_w2,
    gaussian_w2_matrix,
    gaussian_w2_samples,
    moment_error,
)
from ._generation import mean_variance_agreement, per_set_agreement
from ._geometry import (
    distance_spearman,
    nearest_same_label,
    pairwise_distances,
    same_label_auc,
)
from ._gmm import fit_gmm, gmm_w2_samples, gmm_w2_squared
from ._images import class_proportion_error, class_proportions
from ._information import ksg_mutual_information, mutual_information_test
from ._perturbation import (
    delta_pearson,
    direction_accuracy,
    perturbation_score_table,
    perturbation_scores,
    top_de_genes,
)
from ._samples import energy_distance, mmd, sinkhorn_divergence
from ._sequences import (
    co_methylation,
    co_methylation_agreement,
    kmer_spectrum_distance,
    length_distance,
    position_rate_agreement,
)

__all__ = [
    "bures_squared",
    "class_proportion_error",
    "class_proportions",
    "co_methylation",
    "co_methylation_agreement",
    "delta_pearson",
    "direction_accuracy",
    "distance_spearman",
    "energy_distance",
    "exact_w2",
    "fit_gmm",
    "gaussian_w2",
    "gaussian_w2_matrix",
    "gaussian_w2_samples",
    "gmm_w2_samples",
    "gmm_w2_squared",
    "kmer_spectrum_distance",
    "ksg_mutual_information",
    "length_distance",
    "mean_variance_agreement",
    "mmd",
    "moment_error",
    "mutual_information_test",
    "nearest_same_label",
    "pairwise_distances",
    "per_set_agreement",
    "perturbation_score_table",
    "perturbation_scores",
    "position_rate_agreement",
    "same_label_auc",
    "sinkhorn_divergence",
    "top_de_genes",
]
