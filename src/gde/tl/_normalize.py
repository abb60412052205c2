"""Moved to :mod:`gde._anndata_utils`; kept while ``benchmarks/synthetic_counts.py`` imports it."""

from gde._anndata_utils import log_normalize, to_dense  # noqa: F401
