"""Agreement between generated and real cells."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse
from scipy.stats import pearsonr


def _moments(x) -> tuple[np.ndarray, np.ndarray]:
    if sparse.issparse(x):
        mean = np.asarray(x.mean(0)).ravel()
        sq = np.asarray(x.multiply(x).mean(0)).ravel()
    else:
        x = np.asarray(x, dtype=np.float64)
        mean, sq = x.mean(0), (x**2).mean(0)
    return mean, np.maximum(sq - mean**2, 0.0)


def mean_variance_agreement(
    generated: AnnData | np.ndarray,
    real: AnnData | np.ndarray,
    log: bool = True,
) -> dict[str, float]:
    """Pearson correlation of per-feature means and variances, generated vs real.

    Parameters
    ----------
    generated, real
        Cells × features (AnnData: ``X`` is used), same features in the same order.
    log
        Correlate ``log1p`` of the moments (suits counts, whose moments span orders of
        magnitude).

    Returns
    -------
    ``{"mean_r": ..., "var_r": ...}``.
    """
    xg = generated.X if isinstance(generated, AnnData) else generated
    xr = real.X if isinstance(real, AnnData) else real
    if xg.shape[1] != xr.shape[1]:
        raise ValueError("generated and real must have the same features.")
    (mg, vg), (mr, vr) = _moments(xg), _moments(xr)
    f = np.log1p if log else (lambda v: v)
    return {
        "mean_r": float(pearsonr(f(mg), f(mr)).statistic),
        "var_r": float(pearsonr(f(vg), f(vr)).statistic),
    }


def per_set_agreement(
    generated: AnnData,
    real: AnnData,
    set_key: str = "set",
    real_set_key: str | None = None,
    log: bool = True,
) -> pd.DataFrame:
    """:func:`mean_variance_agreement` for each set present in both AnnData objects.

    Parameters
    ----------
    generated
        Generated cells with their source set in ``obs[set_key]``.
    real
        Real cells with their set in ``obs[real_set_key]`` (default: ``set_key``).
    set_key, real_set_key
        Set columns.
    log
        Correlate ``log1p`` of the moments.

    Returns
    -------
    One row per set: ``mean_r``, ``var_r``.
    """
    real_set_key = real_set_key or set_key
    g_sets = generated.obs[set_key].astype(str)
    r_sets = real.obs[real_set_key].astype(str)
    rows = {}
    for s in pd.unique(g_sets):
        if (r_sets == s).sum() < 2:
            continue
        rows[s] = mean_variance_agreement(
            generated[(g_sets == s).to_numpy()], real[(r_sets == s).to_numpy()], log=log
        )
    return pd.DataFrame.from_dict(rows, orient="index")
