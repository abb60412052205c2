"""Simulated and shipped data sets."""

from ._covid import liu_covid
from ._equal_means import simulate_equal_mean_sets
from ._gaussian import gaussian_sets, gmm_sets
from ._images import class_mixture_sets, digit_sets, fashion_mnist_sets, load_fashion_mnist
from ._lineage import larry_clone_fates, read_lineage, simulate_lineage
from ._motif import motif_sets
from ._perturbation import simulate_perturbations
from ._screen import read_perturbation_screen
from ._shape import shape_sets
from ._simulate import simulate_sets, true_w2
from ._smf import smf_reads
from ._wheel import data_dir

__all__ = [
    "class_mixture_sets",
    "data_dir",
    "digit_sets",
    "fashion_mnist_sets",
    "gaussian_sets",
    "gmm_sets",
    "larry_clone_fates",
    "liu_covid",
    "load_fashion_mnist",
    "motif_sets",
    "read_lineage",
    "read_perturbation_screen",
    "shape_sets",
    "simulate_equal_mean_sets",
    "simulate_lineage",
    "simulate_perturbations",
    "simulate_sets",
    "smf_reads",
    "true_w2",
]
