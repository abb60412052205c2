"""Set sampling: sets of cells grouped by an obs column, split by set, sharded by rank."""

# Not public (not in __all__): set_level_obs and iter_cell_chunks stay importable from here
# while gde.model imports them from gde.data.
from gde._anndata_utils import set_level_obs  # noqa: F401

from ._fields import SetObsField
from ._loader import SetDataLoader, iter_cell_chunks  # noqa: F401
from ._sampler import SetBatchSampler
from ._splitter import SetDataSplitter, SetSplit, split_sets

__all__ = [
    "SetBatchSampler",
    "SetDataLoader",
    "SetDataSplitter",
    "SetObsField",
    "SetSplit",
    "split_sets",
]
