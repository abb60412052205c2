"""AnnData helpers shared by every layer: read and check values, group cells by set.

- reading: :func:`get_data` (layer, ``X`` or ``obsm``), :func:`to_dense`,
  :func:`log_normalize`;
- checks run before any work is done: :func:`check_set_column`,
  :func:`check_obs_columns`, :func:`check_finite`, :func:`check_counts`,
  :func:`is_count_matrix`;
- sets: :func:`group_cells_by_set` (rows of each set's cells), :func:`group_membership`
  (the same as a sparse sum matrix), :func:`set_codes`, :func:`constant_columns` and
  :func:`set_level_obs` (``obs`` columns constant within each set).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

_CHUNK_ROWS = 8192


# ---------------------------------------------------------------- reading values
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


def to_dense(x) -> np.ndarray:
    """A dense float64 copy of a dense or sparse matrix (sparse keeps its dtype)."""
    return x.toarray() if sparse.issparse(x) else np.asarray(x, dtype=np.float64)


def log_normalize(x, target_sum: float = 1e4, normalize: bool | None = True):
    """``log1p`` of counts scaled to ``target_sum`` per cell, or ``x`` as float.

    ``normalize=None`` normalises only when ``x`` holds non-negative integers (counts).
    Sparse input stays sparse (CSR); dense input is returned as a float64 array.
    """
    if normalize is None:
        normalize = is_count_matrix(x)
    if sparse.issparse(x):
        x = sparse.csr_matrix(x, dtype=np.float64)
        if not normalize:
            return x
        totals = np.asarray(x.sum(axis=1)).ravel()
        out = sparse.diags(target_sum / np.maximum(totals, 1.0)) @ x
        out = sparse.csr_matrix(out)
        out.data = np.log1p(out.data)
        return out
    x = np.asarray(x, dtype=np.float64)
    if not normalize:
        return x
    totals = x.sum(axis=1, keepdims=True)
    return np.log1p(x * (target_sum / np.maximum(totals, 1.0)))


def comparison_layer(
    real: AnnData, generated: AnnData, layer: str | None, normalize: bool | None
) -> tuple[str | None, bool]:
    """The layer of ``real`` on the scale of ``generated.X``, and whether to log-normalise.

    ``normalize`` comes back resolved, so that neither matrix is scanned again.

    With ``normalize=None`` counts are log-normalised and continuous values compared as
    they are, so both sides must be of the same kind. When ``real.X`` is not counts but
    the generated cells are, the counts layer the model was trained on (recorded by
    ``sample`` in ``generated.uns['gde_sample']``) is used; otherwise this raises, naming
    the layer to pass.
    """
    if normalize is not None:
        return layer, normalize
    real_counts = is_count_matrix(get_data(real, layer=layer))
    generated_counts = is_count_matrix(generated.X)
    if real_counts == generated_counts:
        return layer, real_counts
    where = f"real.layers['{layer}']" if layer is not None else "real.X"
    if generated_counts:
        registered = generated.uns.get("gde_sample", {}).get("counts_layer")
        if layer is None and registered in real.layers:
            if is_count_matrix(real.layers[registered]):
                return registered, True
        candidates = [k for k in real.layers if is_count_matrix(real.layers[k])]
        fix = (
            f"pass layer='{candidates[0]}' (raw counts)"
            if candidates
            else "keep the raw counts in a layer (`adata.layers['counts'] = adata.X.copy()` "
            "before normalising) and pass layer='counts'"
        )
        raise ValueError(
            f"{where} is not raw counts (log-normalised?) but the generated cells are "
            "counts: normalising only the generated cells would compare different scales. "
            f"To compare like with like, {fix}; both are then log-normalised the same way."
        )
    raise ValueError(
        f"{where} holds raw counts but the generated values are continuous features: pass "
        "the layer the model was trained on (layer=...), or normalize=True or False to "
        "treat both sides the same way."
    )


# ------------------------------------------------------------------------ checks
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


def negative_integers(x) -> tuple[int, tuple[int, int]] | None:
    """If every value is an integer and some are negative: how many, and the first (row, col).

    ``None`` when there is no negative value or some value is not an integer.
    """
    count, first = 0, None
    for start in range(0, x.shape[0], _CHUNK_ROWS):
        chunk = x[start : start + _CHUNK_ROWS]
        if sparse.issparse(chunk):
            chunk = sparse.coo_matrix(chunk)
            values, rows, cols = np.asarray(chunk.data), chunk.row, chunk.col
        else:
            chunk = np.asarray(chunk)
            rows, cols = np.nonzero(chunk < 0)
            values = chunk.ravel()
        if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
            return None
        if sparse.issparse(x):
            negative = values < 0
            rows, cols = rows[negative], cols[negative]
        if len(rows) and first is None:
            first = (start + int(rows[0]), int(cols[0]))
        count += len(rows)
    return (count, first) if count else None


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


def check_backed_view(adata: AnnData) -> None:
    """Raise on a subset (view) of an AnnData opened backed: it cannot be registered.

    Registering a view copies it, and a backed view can only be copied into memory or
    to a new file: say how to do either.
    """
    if getattr(adata, "isbacked", False) and adata.is_view:
        raise ValueError(
            "This AnnData is a subset (view) of a file opened backed. Registering it needs "
            "a copy, which would read the whole subset into memory. Write the subset to its "
            "own file and open that one, `adata[mask].copy(filename='subset.h5ad')` then "
            "`gde.read_lazy('subset.h5ad')`, or, if it fits in memory, use "
            "`adata[mask].to_memory()`."
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


# -------------------------------------------------------------------------- sets
def set_codes(labels: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Code of each cell's set and the set names (strings), in category order.

    Sets without cells (unused categories) are dropped, so the codes are ``0..k-1``.
    """
    categories = pd.Categorical(labels).remove_unused_categories()
    return np.asarray(categories.codes), categories.categories.astype(str)


def group_cells_by_set(
    labels: np.ndarray | pd.Series, n_sets: int | None = None
) -> list[np.ndarray] | dict[str, np.ndarray]:
    """Rows of the cells of each set, in increasing order.

    Parameters
    ----------
    labels
        Integer set code of each cell, ``0..n_sets-1``; or, with ``n_sets=None``, each
        cell's set label (compared as strings).
    n_sets
        Number of sets (codes without cells get an empty array).

    Returns
    -------
    A list indexed by set code; with ``n_sets=None`` a dict from set name (string) to rows,
    in order of first appearance.
    """
    if n_sets is None:
        codes, names = pd.factorize(pd.Series(labels).astype(str).to_numpy())
        return dict(zip(names, group_cells_by_set(codes, len(names)), strict=True))
    codes = np.asarray(labels).ravel()
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=n_sets)
    return np.split(order, np.cumsum(counts)[:-1])


def group_membership(
    codes: np.ndarray, n_groups: int, weights: np.ndarray | None = None
) -> sparse.csr_matrix:
    """``(n_groups, n_cells)`` matrix whose product with cells × features sums each group.

    Entry ``(codes[i], i)`` is ``weights[i]`` (1 by default); cells with a negative code
    belong to no group.
    """
    codes = np.asarray(codes).ravel()
    keep = np.flatnonzero(codes >= 0)
    values = np.ones(len(keep)) if weights is None else np.asarray(weights)[keep]
    return sparse.csr_matrix((values, (codes[keep], keep)), shape=(n_groups, len(codes)))


def constant_columns(obs: pd.DataFrame, codes: np.ndarray) -> pd.DataFrame:
    """The columns of ``obs`` that are constant within each set, one row per set.

    Parameters
    ----------
    obs
        Cell metadata.
    codes
        Each cell's set code, ``0..k-1``, every code present.

    Returns
    -------
    The value of each set's first cell in every column with a single value (missing
    values count as a value) within each set; rows in code order (index ``0..k-1``),
    dtypes (categories included) as in ``obs``.
    """
    codes = np.asarray(codes).ravel()
    first = np.unique(codes, return_index=True)[1]
    kept = {}
    for col in obs.columns:
        values = obs[col]
        per_set = pd.Series(values.to_numpy(), copy=False).groupby(codes, sort=True)
        if not (per_set.nunique(dropna=False) > 1).any():
            kept[col] = values.iloc[first].reset_index(drop=True)
    return pd.DataFrame(kept, index=pd.RangeIndex(len(first)))


def set_level_obs(obs: pd.DataFrame, set_key: str, sets: pd.Index | None = None) -> pd.DataFrame:
    """One row per set: ``n_cells`` and every ``obs`` column constant within each set.

    A column is kept when each set has a single value in it (missing values count as a
    value), e.g. donor, condition, batch or time point; columns that vary within any set
    (cell type, library size) are dropped. Categorical columns stay categorical, with the
    categories that occur among the sets.

    Parameters
    ----------
    obs
        Cell metadata (``adata.obs``).
    set_key
        Column naming each cell's set.
    sets
        Sets to report, in this order (set names as strings); all sets by default.

    Returns
    -------
    DataFrame indexed by set name (strings), with ``n_cells`` first.
    """
    codes, uniques = pd.factorize(obs[set_key].astype(str).to_numpy())
    index = pd.Index(uniques, name=None)
    out = pd.DataFrame(index=index)
    out["n_cells"] = np.bincount(codes, minlength=len(index)).astype(np.int64)
    for col, kept in constant_columns(obs, codes).drop(columns=set_key, errors="ignore").items():
        if isinstance(kept.dtype, pd.CategoricalDtype):
            out[str(col)] = pd.Categorical(kept.cat.remove_unused_categories())
        else:
            out[str(col)] = kept.to_numpy()
    if sets is not None:
        sets = pd.Index([str(s) for s in sets])
        missing = sets.difference(out.index)
        if len(missing):
            raise KeyError(f"{len(missing)} set(s) not in obs['{set_key}']: {list(missing[:10])}.")
        out = out.loc[sets]
    return out
