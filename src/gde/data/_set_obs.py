"""Set-level metadata: the ``obs`` columns that are constant within each set."""

from __future__ import annotations

import numpy as np
import pandas as pd


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
    labels = obs[set_key].astype(str).to_numpy()
    codes, uniques = pd.factorize(labels)
    index = pd.Index(uniques, name=None)
    out = pd.DataFrame(index=index)
    out["n_cells"] = np.bincount(codes, minlength=len(index)).astype(np.int64)
    first = np.unique(codes, return_index=True)[1]  # codes are 0..k-1 by first appearance
    for col in obs.columns:
        if col == set_key:
            continue
        values = obs[col]
        per_set = pd.Series(values.to_numpy(), copy=False).groupby(codes, sort=True)
        if (per_set.nunique(dropna=False) > 1).any():
            continue
        kept = values.iloc[first]
        if isinstance(values.dtype, pd.CategoricalDtype):
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
