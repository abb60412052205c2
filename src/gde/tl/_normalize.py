"""Moved to :mod:`gde._anndata_utils`; forwards to it while a benchmark imports from here.

(``benchmarks/synthetic_counts.py`` calls ``gde.tl._normalize.log_normalize``.)
"""

import gde._anndata_utils as _moved


def __getattr__(name: str):
    return getattr(_moved, name)
