"""Per-set, per-gene moments of generated cells against the real cells of each set."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from gde._anndata_utils import (
    check_set_column,
    comparison_layer,
    get_data,
    group_membership,
    log_normalize,
    to_dense,
)


def _group_mean_var(x, labels: np.ndarray, groups: Sequence[str]) -> tuple[np.ndarray, ...]:
    """Mean and (population) variance of the rows of ``x`` within each group."""
    member = group_membership(pd.Index(groups).get_indexer(labels), len(groups))
    n = np.asarray(member.sum(axis=1), dtype=np.float64)
    squares = x.multiply(x) if sparse.issparse(x) else x * x
    mean = to_dense(member @ x) / n
    mean_sq = to_dense(member @ squares)
    var = np.maximum(mean_sq / n - mean**2, 0.0)
    return mean, var


def generated_vs_real(
    real: AnnData,
    generated: AnnData,
    *,
    set_key: str,
    sets: Sequence[str] | None = None,
    layer: str | None = None,
    target_sum: float = 1e4,
    normalize: bool | None = None,
) -> pd.DataFrame:
    """Per set and gene, mean and variance of real against generated cells.

    Counts are scaled to ``target_sum`` per cell (over the genes compared) and
    ``log1p``-transformed; continuous features (say, log-normalised ``X``) are compared
    as they are. Variances are population variances (``ddof=0``).

    Parameters
    ----------
    real
        Real cells × genes, counts in ``layer`` (or ``X``).
    generated
        Generated cells as returned by :meth:`gde.GDEModel.sample`: values in ``X``,
        the set each cell was generated from in ``obs[set_key]`` (``obs['set']`` is
        accepted too).
    set_key
        Column of ``real.obs`` (and of ``generated.obs``) naming each cell's set.
    sets
        Sets to compare; by default every set present in both.
    layer
        Layer of ``real`` with the counts; ``None`` uses ``real.X``, or, if ``real.X``
        is not counts, the counts layer the model was trained on.
    target_sum
        Counts per cell after scaling.
    normalize
        Log-normalise both matrices (``True``) or neither (``False``); ``None``
        log-normalises counts and compares continuous features as they are, and raises
        if one side is counts and the other is not (say, generated counts against a
        log-normalised ``real.X``: pass the counts layer).

    Returns
    -------
    Long DataFrame, one row per set and gene, with columns ``set``, ``gene``,
    ``mean_real``, ``mean_generated``, ``var_real`` and ``var_generated``.

    Examples
    --------
    Per-set Pearson correlation of the means and variances:

    >>> gen = model.sample(n_cells=500)  # doctest: +SKIP
    >>> table = gde.tl.generated_vs_real(adata, gen, set_key="donor")  # doctest: +SKIP
    >>> gde.tl.generated_vs_real_summary(table)  # doctest: +SKIP
    """
    check_set_column(real, set_key)
    gen_key = set_key if set_key in generated.obs.columns else "set"
    if gen_key not in generated.obs.columns:
        raise KeyError(
            f"generated.obs['{set_key}'] is missing. Pass the AnnData returned by "
            f"`model.sample()`, whose obs['{set_key}'] names each cell's source set."
        )
    genes = generated.var_names
    missing = genes.difference(real.var_names)
    if len(missing):
        raise ValueError(
            f"{len(missing)} generated genes are not in real.var_names (e.g. "
            f"{list(missing[:3])}); pass the AnnData the model was trained on."
        )
    real_labels = real.obs[set_key].astype(str).to_numpy()
    gen_labels = generated.obs[gen_key].astype(str).to_numpy()
    if sets is None:
        present = set(real_labels)
        sets = [s for s in pd.unique(gen_labels) if s in present]
        if not sets:
            raise ValueError(
                f"No set of generated.obs['{gen_key}'] is in real.obs['{set_key}']; generate "
                "with `model.sample(sets=...)` from sets of `real`."
            )
    else:
        sets = [str(s) for s in sets]
        for labels, where in (
            (real_labels, f"real.obs['{set_key}']"),
            (gen_labels, f"generated.obs['{gen_key}']"),
        ):
            absent = sorted(set(sets).difference(labels))
            if absent:
                raise KeyError(f"Sets {absent} are not in {where}.")
    layer, normalize = comparison_layer(real, generated, layer, normalize)
    x_real = get_data(real, layer=layer)
    col = real.var_names.get_indexer(genes)
    x_real = x_real[:, col] if not np.array_equal(col, np.arange(real.n_vars)) else x_real
    x_real = log_normalize(x_real, target_sum, normalize)
    x_gen = log_normalize(generated.X, target_sum, normalize)
    mean_r, var_r = _group_mean_var(x_real, real_labels, sets)
    mean_g, var_g = _group_mean_var(x_gen, gen_labels, sets)
    n_genes = len(genes)
    return pd.DataFrame(
        {
            "set": pd.Categorical(np.repeat(sets, n_genes), categories=sets),
            "gene": pd.Categorical(np.tile(genes.astype(str), len(sets)), categories=genes),
            "mean_real": mean_r.ravel(),
            "mean_generated": mean_g.ravel(),
            "var_real": var_r.ravel(),
            "var_generated": var_g.ravel(),
        }
    )


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation over the finite pairs; NaN when either side is constant."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def generated_vs_real_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per-set Pearson correlation, over genes, of real and generated moments.

    Parameters
    ----------
    table
        Output of :func:`generated_vs_real`.

    Returns
    -------
    DataFrame indexed by set with columns ``r_mean`` and ``r_var``.
    """
    rows = {
        name: {
            "r_mean": pearson(g["mean_real"], g["mean_generated"]),
            "r_var": pearson(g["var_real"], g["var_generated"]),
        }
        for name, g in table.groupby("set", observed=True, sort=False)
    }
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["r_mean", "r_var"])
    out.index.name = "set"
    return out
