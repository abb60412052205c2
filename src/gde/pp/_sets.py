"""Sets from several obs columns: clone × time point, perturbation × cell line."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData


def make_sets(
    adata: AnnData,
    keys: str | Sequence[str],
    *,
    key_added: str = "set",
    separator: str = " | ",
    min_cells: int = 1,
    max_cells: int | None = None,
    seed: int = 0,
    copy: bool = False,
) -> AnnData | None:
    """Label each cell with its set: the combination of its values in ``keys``.

    Use it to embed, e.g., each clone at each time point (``keys=["clone", "day"]``) or
    each perturbation in each cell line. Sets larger than ``max_cells`` are split at
    random into chunks of at most that size (``"... | chunk 2"``); sets smaller than
    ``min_cells`` are left out (their cells get no label, with a warning).

    Parameters
    ----------
    adata
        The cells.
    keys
        ``obs`` column(s) whose joint values define the sets.
    key_added
        ``obs`` column to write the set labels to (categorical).
    separator
        Joins the values in a label.
    min_cells
        Smallest set kept.
    max_cells
        Largest set; larger ones are split into near-equal chunks. ``None``: no limit.
    seed
        Seed of the random split into chunks.
    copy
        Return a modified copy instead of writing in place.

    Returns
    -------
    ``None``, or the copy with ``obs[key_added]``; cells of sets left out have a missing
    label (keep the others with ``adata[adata.obs[key_added].notna()]``).
    """
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise ValueError("`keys` must name at least one obs column.")
    for key in keys:
        if key not in adata.obs.columns:
            raise KeyError(f"'{key}' is not a column of adata.obs.")
        n_missing = int(adata.obs[key].isna().sum())
        if n_missing:
            raise ValueError(
                f"adata.obs['{key}'] has {n_missing} missing values: every cell needs a "
                f"value to be placed in a set. Drop them first "
                f"(`adata = adata[adata.obs['{key}'].notna()].copy()`)."
            )
    if min_cells < 1 or (max_cells is not None and max_cells < min_cells):
        raise ValueError("Need 1 <= min_cells <= max_cells.")
    labels = adata.obs[keys[0]].astype(str)
    for key in keys[1:]:
        labels = labels + separator + adata.obs[key].astype(str)
    labels = labels.to_numpy(dtype=object)
    out = labels.copy()
    sizes = pd.Series(labels).value_counts()
    small = sizes.index[sizes < min_cells]
    if len(small):
        warnings.warn(
            f"{len(small)} set(s) have fewer than {min_cells} cells and are left out "
            f"({int(sizes[small].sum())} cells, e.g. '{small[0]}'); their cells have no "
            f"label in obs['{key_added}'].",
            UserWarning,
            stacklevel=2,
        )
        out[np.isin(labels, small)] = None
    if max_cells is not None:
        rng = np.random.default_rng(seed)
        for label in sizes.index[sizes > max_cells]:
            rows = rng.permutation(np.flatnonzero(labels == label))
            n_chunks = -(-len(rows) // max_cells)
            for i, chunk in enumerate(np.array_split(rows, n_chunks)):
                out[chunk] = f"{label}{separator}chunk {i + 1}"
    if copy:
        adata = adata.copy()
    adata.obs[key_added] = pd.Categorical(out)
    return adata if copy else None
