"""Simulated and shipped data sets."""

from ._covid import liu_covid
from ._equal_means import simulate_equal_mean_sets
from ._gaussian import gaussian_sets, gmm_sets
from ._motif import motif_sets
from ._shape import shape_sets
from ._simulate import simulate_sets, true_w2
from ._smf import smf_reads
from ._wheel import data_dir

__all__ = [
    "data_dir",
    "gaussian_sets",
    "gmm_sets",
    "liu_covid",
    "motif_sets",
    "shape_sets",
    "simulate_equal_mean_sets",
    "simulate_sets",
    "smf_reads",
    "true_w2",
]
