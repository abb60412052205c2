"""Simulated and shipped data sets."""

from ._simulate import simulate_sets, true_w2

__all__ = ["simulate_sets", "true_w2"]
