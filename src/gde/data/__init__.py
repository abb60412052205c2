"""Set sampling: sets of cells grouped by an obs column, split by set, sharded by rank."""

from ._fields import SetObsField
from ._loader import SetDataLoader, iter_cell_chunks
from ._sampler import SetBatchSampler
from ._set_obs import set_level_obs
from ._splitter import SetDataSplitter, SetSplit, group_cells_by_set, split_sets
from ._stats import nb_log_theta

__all__ = [
    "SetBatchSampler",
    "SetDataLoader",
    "SetDataSplitter",
    "SetObsField",
    "SetSplit",
    "group_cells_by_set",
    "iter_cell_chunks",
    "nb_log_theta",
    "set_level_obs",
    "split_sets",
]
