"""Checks on user data, run before any work is done."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

_CHUNK_ROWS = 8192


def data_location(layer: str | None = None, obsm_key: str | None = None) -> str:
    """Human-readable location of the registered data."""
    if obsm_key is not None:
        return f"adata.obsm['{obsm_key}']"
    return "adata.X" if layer is None else f"adata.layers['{layer}']"


def get_data(adata: AnnData, layer: str | None = None, obsm_key: str | None = None):
    """Return the registered data matrix, with a clear error if it is missing."""
    if layer is not None and obsm_key is not None:
        raise ValueError("Pass either `layer` or `obsm_key`, not both.")
    if obsm_key is not None:
        if obsm_key not in adata.obsm:
            available = list(adata.obsm.keys())
            raise KeyError(
                f"obsm_key '{obsm_key}' not found in adata.obsm (available: "
                f"{available or 'none'})."
            )
        x = adata.obsm[obsm_key]
        return x.to_numpy() if isinstance(x, pd.DataFrame) else x
    if layer is None:
        if adata.X is None:
            raise ValueError(
                "adata.X is empty. Pass `layer=` naming the layer that holds the data."
            )
        return adata.X
    if layer not in adata.layers:
        available = list(adata.layers.keys())
        raise KeyError(
            f"Layer '{layer}' not found in adata.layers (available: {available or 'none'}). "
            "Pass `layer=None` to use adata.X."
        )
    return adata.layers[layer]


def _iter_values(x) -> Iterator[np.ndarray]:
    """Yield the stored values of a dense or sparse matrix in bounded-size chunks."""
    if sparse.issparse(x):
        data = x.data
        step = _CHUNK_ROWS * 256
        for start in range(0, data.shape[0], step):
            yield np.asarray(data[start : start + step])
    else:
        n = x.shape[0]
        for start in range(0, n, _CHUNK_ROWS):
            chunk = x[start : start + _CHUNK_ROWS]
            if sparse.issparse(chunk):
                chunk = chunk.data
            yield np.asarray(chunk)


def is_count_matrix(x) -> bool:
    """Whether every stored value is a non-negative integer."""
    for values in _iter_values(x):
        if values.size == 0 or values.dtype.kind in "ub":
            continue
        if values.min() < 0:
            return False
        if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
            return False
    return True


def check_finite(x, where: str) -> None:
    """Raise if the matrix holds NaN or infinite values (``where`` names it)."""
    for values in _iter_values(x):
        if values.dtype.kind in "iub":
            return
        if not np.isfinite(values).all():
            n_bad = int((~np.isfinite(values)).sum())
            raise ValueError(
                f"{where} contains NaN or infinite values ({n_bad} in the first "
                "affected chunk). Remove or impute them before setup, e.g. "
                "`adata = adata[np.isfinite(adata.X.sum(1)).A1]` for whole-cell failures."
            )


def check_counts(x, where: str, likelihood: str) -> None:
    """Raise if the matrix is not made of non-negative integers (``where`` names it)."""
    for values in _iter_values(x):
        if values.size == 0:
            continue
        if values.min() < 0:
            raise ValueError(
                f"{where} contains negative values, but likelihood="
                f"'{likelihood}' models raw counts. Register the raw-count layer "
                "(e.g. `layer='counts'`), not normalised or scaled data."
            )
        if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
            raise ValueError(
                f"{where} contains non-integer values, but likelihood="
                f"'{likelihood}' models raw counts. Register the raw-count layer "
                "(e.g. `layer='counts'`); log-normalised data is not counts."
            )


def check_set_column(adata: AnnData, set_key: str) -> None:
    """Raise if ``adata.obs[set_key]`` is missing or has missing labels."""
    if set_key is None:
        raise ValueError("`set_key` is required: the obs column naming each cell's set.")
    if set_key not in adata.obs.columns:
        cols = list(adata.obs.columns)
        shown = ", ".join(map(str, cols[:20])) + (" ..." if len(cols) > 20 else "")
        raise KeyError(
            f"set_key '{set_key}' is not a column of adata.obs (columns: {shown or 'none'})."
        )
    column = adata.obs[set_key]
    n_missing = int(pd.isna(column).sum())
    if n_missing:
        raise ValueError(
            f"adata.obs['{set_key}'] has {n_missing} cells with a missing (NaN) set label. "
            "Every cell must belong to a set: drop those cells "
            f"(`adata = adata[adata.obs['{set_key}'].notna()].copy()`) or label them."
        )


def check_obs_columns(adata: AnnData, keys: list[str] | None, what: str) -> None:
    """Raise if covariate columns are missing or contain NaN."""
    for key in keys or []:
        if key not in adata.obs.columns:
            raise KeyError(f"{what} '{key}' is not a column of adata.obs.")
        n_missing = int(pd.isna(adata.obs[key]).sum())
        if n_missing:
            raise ValueError(
                f"adata.obs['{key}'] ({what}) has {n_missing} missing values; fill or drop them."
            )
