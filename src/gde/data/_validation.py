"""Moved to :mod:`gde._anndata_utils`; kept while ``gde.model`` imports from here."""

from gde._anndata_utils import (  # noqa: F401
    check_counts,
    check_finite,
    check_obs_columns,
    check_set_column,
    data_location,
    get_data,
    is_count_matrix,
)
