"""Simulated and shipped data sets."""

from ._gaussian import gaussian_sets, gmm_sets
from ._simulate import simulate_sets, true_w2

__all__ = ["gaussian_sets", "gmm_sets", "simulate_sets", "true_w2"]
