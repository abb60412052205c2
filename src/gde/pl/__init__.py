"""Plots in scanpy's shape: they take ``ax=``/``show=`` and return the Axes."""

from ._sets import set_embedding

__all__ = ["set_embedding"]
