"""Loaders: set minibatches for training, cell chunks for inference."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from scvi.data import AnnDataManager
from torch.utils.data import BatchSampler, DataLoader

from ._backed import OrderedReads
from ._sampler import SetBatchSampler


class SetDataLoader(DataLoader):
    """Load set minibatches as tensors shaped ``(n_sets, set_size, ...)``.

    Parameters
    ----------
    adata_manager
        Manager of the registered AnnData.
    sampler
        Sampler yielding flat arrays of cell indices, set by set.
    data_and_attributes
        Registry keys to load (all registered keys by default).
    **kwargs
        Passed to :class:`torch.utils.data.DataLoader` (e.g. ``num_workers``).
    """

    def __init__(
        self,
        adata_manager: AnnDataManager,
        sampler: SetBatchSampler,
        data_and_attributes: list[str] | dict | None = None,
        **kwargs,
    ):
        dataset = OrderedReads(
            adata_manager.create_torch_dataset(data_and_attributes=data_and_attributes)
        )
        kwargs.pop("batch_size", None)
        kwargs.pop("shuffle", None)
        # the sampler yields whole minibatches: one __getitem__ call slices them at once
        super().__init__(dataset, sampler=sampler, batch_size=None, **kwargs)
        self.set_size = sampler.set_size

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for batch in super().__iter__():
            # (n_sets * set_size, ...) -> (n_sets, set_size, ...)
            yield {k: v.reshape(-1, self.set_size, *v.shape[1:]) for k, v in batch.items()}


def iter_cell_chunks(
    adata_manager: AnnDataManager,
    indices: np.ndarray,
    chunk_size: int,
    data_and_attributes: list[str] | None = None,
) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """Yield ``(positions, tensors)`` for consecutive chunks of the given cells.

    ``positions`` are the positions of the chunk's cells within ``indices``; tensors are
    shaped ``(chunk, ...)``. Only one chunk is held in memory at a time.
    """
    dataset = OrderedReads(
        adata_manager.create_torch_dataset(data_and_attributes=data_and_attributes)
    )
    order = np.argsort(indices, kind="stable")  # row order reads CSR data contiguously
    sorted_indices = np.asarray(indices)[order]
    sampler = BatchSampler(range(len(sorted_indices)), batch_size=chunk_size, drop_last=False)
    for chunk_positions in sampler:
        positions = order[chunk_positions]
        data = dataset[sorted_indices[chunk_positions]]
        yield positions, {k: torch.as_tensor(v) for k, v in data.items()}
