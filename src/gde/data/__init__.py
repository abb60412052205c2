"""Set sampling: sets of cells grouped by an obs column, split by set, sharded by rank."""

# Not public (not in __all__), for gde.model: data sources, statistics, checks, chunks.
from ._backed import (  # noqa: F401
    OrderedReads,
    is_on_disk,
    iter_row_chunks,
    read_rows,
    stats_rows,
)
from ._fields import SetObsField
from ._likelihood import resolve_likelihood, scan_counts  # noqa: F401
from ._loader import SetDataLoader, iter_cell_chunks  # noqa: F401
from ._sampler import SetBatchSampler
from ._source import DataSource, data_source, mudata_location  # noqa: F401
from ._splitter import SetDataSplitter, SetSplit, split_sets
from ._stats import cell_statistics, log_library_sizes  # noqa: F401

__all__ = [
    "SetBatchSampler",
    "SetDataLoader",
    "SetDataSplitter",
    "SetObsField",
    "SetSplit",
    "split_sets",
]
