"""Set-level analysis tools in scanpy's shape."""

from ._generated import generated_vs_real, generated_vs_real_summary
from ._images import pixel_mean_embedding
from ._lineage import clone_information
from ._perturbation import (
    perturbation_baselines,
    perturbation_design,
    perturbation_means,
    predict_perturbation_embeddings,
)
from ._pseudobulk import pseudobulk_embedding
from ._sequences import kmer_embedding, position_rate_embedding
from ._sets import set_dendrogram, set_distances
from ._wasserstein import wasserstein_distances

__all__ = [
    "clone_information",
    "generated_vs_real",
    "generated_vs_real_summary",
    "kmer_embedding",
    "perturbation_baselines",
    "perturbation_design",
    "perturbation_means",
    "pixel_mean_embedding",
    "position_rate_embedding",
    "predict_perturbation_embeddings",
    "pseudobulk_embedding",
    "set_dendrogram",
    "set_distances",
    "wasserstein_distances",
]
