"""Simulated count files on disk for the scaling benchmark, written block by block.

``write_counts_h5ad`` writes an ``.h5ad`` file with CSR counts that never sits whole in
memory: each set has its own mean profile (gamma-distributed gene means), its cells are
Poisson draws around it, and the cells of a set are stored next to each other (or in a
random order with ``shuffle=True``, to measure what the layout costs).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata.io import sparse_dataset, write_elem


def write_counts_h5ad(
    path: str | Path,
    set_sizes: dict[str, int],
    n_genes: int,
    counts_per_cell: float = 40.0,
    seed: int = 0,
    block: int = 100_000,
    shuffle: bool = False,
) -> dict:
    """Write the file; return its cells, non-zeros and size in bytes.

    ``shuffle=True`` writes the same cells in a random order (cells of a set scattered
    through the file); only possible when the whole matrix fits in memory.
    """
    rng = np.random.default_rng(seed)
    names = list(set_sizes)
    sizes = np.array([set_sizes[n] for n in names])
    n_cells = int(sizes.sum())
    profiles = rng.gamma(0.3, 1.0, size=(len(names), n_genes))
    profiles *= counts_per_cell / profiles.sum(1, keepdims=True)
    labels = np.repeat(np.arange(len(names)), sizes)
    order = rng.permutation(n_cells) if shuffle else np.arange(n_cells)
    obs = pd.DataFrame(
        {"set": pd.Categorical.from_codes(labels[order], categories=names)},
        index=pd.Index(np.arange(n_cells).astype(str)),
    )
    var = pd.DataFrame(index=[f"gene_{g}" for g in range(n_genes)])
    nnz = 0
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"], f.attrs["encoding-version"] = "anndata", "0.1.0"
        write_elem(f, "obs", obs)
        write_elem(f, "var", var)
        write_elem(f, "uns", {})
        matrix = None
        for start in range(0, n_cells, block):
            cells = order[start : start + block]
            counts = rng.poisson(profiles[labels[cells]]).astype(np.float32)
            chunk = sp.csr_matrix(counts)
            nnz += chunk.nnz
            if matrix is None:
                write_elem(f, "X", chunk)
                matrix = sparse_dataset(f["X"])
            else:
                matrix.append(chunk)
    return {"n_cells": n_cells, "n_genes": n_genes, "nnz": nnz, "bytes": Path(path).stat().st_size}
