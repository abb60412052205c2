"""Plots in scanpy's shape: they take ``ax=``/``show=`` and return the Axes."""

from ._generated import generated_vs_real
from ._heatmap import distance_heatmap
from ._images import image_grid
from ._interpolation import interpolation
from ._lineage import clone_information
from ._sets import set_embedding

__all__ = [
    "clone_information",
    "distance_heatmap",
    "generated_vs_real",
    "image_grid",
    "interpolation",
    "set_embedding",
]
