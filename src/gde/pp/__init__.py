"""Preprocessing: building the sets a model embeds."""

from ._sets import make_sets

__all__ = ["make_sets"]
