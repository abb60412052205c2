"""Reading matrices that stay on disk (backed h5ad, zarr): rows in order, chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np
import torch
from anndata.abc import CSCDataset, CSRDataset
from torch.utils.data import Dataset

#: cells read from disk to initialise a model's statistics when the data stay on disk
STATS_CELLS = 50_000
#: rows read at once when a matrix on disk is scanned
CHUNK_ROWS = 20_000


def is_on_disk(x) -> bool:
    """Whether ``x`` is a matrix read from disk on access (backed h5ad or zarr)."""
    if isinstance(x, h5py.Dataset | CSRDataset | CSCDataset):
        return True
    return type(x).__module__.startswith("zarr")


def iter_row_chunks(x, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[int, object]]:
    """Yield ``(first_row, rows)`` for consecutive blocks of ``chunk_rows`` rows of ``x``.

    Only one block is in memory at a time; in-memory matrices are sliced the same way.
    """
    for start in range(0, x.shape[0], chunk_rows):
        yield start, x[start : start + chunk_rows]


def read_rows(x, rows: np.ndarray):
    """The rows ``rows`` of ``x``, in the order given, duplicates allowed.

    Matrices on disk are read at sorted, unique rows (the only reads h5py allows, and the
    contiguous ones), then put back in the order asked for.
    """
    rows = np.asarray(rows)
    unique, inverse = np.unique(rows, return_inverse=True)
    return x[unique][inverse]


def stats_rows(n_obs: int, seed: int = 0, max_cells: int | None = None) -> np.ndarray:
    """Sorted rows of a random sample of at most ``max_cells`` cells (all if fewer).

    ``max_cells`` defaults to :data:`STATS_CELLS`.
    """
    max_cells = STATS_CELLS if max_cells is None else max_cells
    if n_obs <= max_cells:
        return np.arange(n_obs)
    rng = np.random.default_rng([seed, 11])
    return np.sort(rng.choice(n_obs, max_cells, replace=False))


def contiguous_runs(rows: np.ndarray) -> list[slice]:
    """Sorted unique ``rows`` as runs of consecutive rows, ``[slice(start, stop), ...]``."""
    if len(rows) == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.r_[rows[0], rows[breaks]]
    stops = np.r_[rows[breaks - 1], rows[-1]] + 1
    return [slice(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


class OrderedReads(Dataset):
    """A registry dataset read at sorted, unique rows, returned in the order asked.

    scvi-tools' dataset sorts the rows of a backed AnnData itself, which would mix the
    sets of a minibatch (laid out set by set), and h5py refuses repeated rows (a small
    set is drawn with replacement). Sorted reads are also the fast ones in memory. Rows
    that form a few long runs (a chunk of a set stored contiguously) are read as slices,
    many times faster than a list of rows from a file.
    """

    #: read runs of rows as slices when they average at least this many rows
    min_run = 16

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def _read(self, rows: np.ndarray) -> dict:
        runs = contiguous_runs(rows)
        if len(runs) <= 1 or len(rows) < self.min_run * len(runs):
            return self.dataset[rows] if len(runs) != 1 else self.dataset[runs[0]]
        parts = [self.dataset[run] for run in runs]
        return {key: _concat([p[key] for p in parts]) for key in parts[0]}

    def __getitem__(self, rows) -> dict:
        rows = np.asarray(rows)
        unique, inverse = np.unique(rows, return_inverse=True)
        data = self._read(unique)
        if len(unique) == len(rows) and (unique == rows).all():
            return data
        return {key: value[inverse] for key, value in data.items()}


def _concat(parts: list):
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)
    return np.concatenate(parts)
