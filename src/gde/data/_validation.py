"""Moved to :mod:`gde._anndata_utils`; forwards to it while ``gde.model`` imports from here."""

import gde._anndata_utils as _moved


def __getattr__(name: str):
    return getattr(_moved, name)
