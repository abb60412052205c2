"""Set-level analysis tools in scanpy's shape."""

# _normalize: not public; benchmarks/synthetic_counts.py calls gde.tl._normalize.log_normalize
from . import _normalize  # noqa: F401
from ._generated import generated_vs_real, generated_vs_real_summary
from ._pseudobulk import pseudobulk_embedding
from ._sets import set_dendrogram, set_distances
from ._wasserstein import wasserstein_distances

__all__ = [
    "generated_vs_real",
    "generated_vs_real_summary",
    "pseudobulk_embedding",
    "set_dendrogram",
    "set_distances",
    "wasserstein_distances",
]
