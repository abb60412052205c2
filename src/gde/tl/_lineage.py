"""Lineage tracing: how much a clone's early state tells about its late state and fate.

Each clone at each time point is a set (``gde.pp.make_sets(adata, ["clone", "time"])``).
From the embeddings of the same clones at an early and a late time point,
:func:`clone_information` estimates their mutual information (KSG, bits), with a
pointwise value per clone and a permutation p-value, and how well the early embedding
predicts each clone's fate on held-out clones.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from anndata import AnnData
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gde._anndata_utils import set_level_obs
from gde._pca import pca, project
from gde.metrics._information import mutual_information_test


def _set_rows(adata: AnnData, use_rep: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Embedding and set-level obs, one row per set."""
    if use_rep in adata.obsm and not (
        isinstance(adata.uns.get(use_rep), Mapping) and "table" in adata.uns[use_rep]
    ):
        z = pd.DataFrame(np.asarray(adata.obsm[use_rep], dtype=np.float64))
        return z.set_axis(adata.obs_names.astype(str)), adata.obs
    entry = adata.uns.get(use_rep)
    if not isinstance(entry, Mapping) or "table" not in entry:
        raise KeyError(
            f"No set embedding '{use_rep}': pass the set AnnData of "
            "`model.get_set_adata()` (embedding in obsm), or cells with "
            f"adata.uns['{use_rep}'] from `model.get_distribution_embeddings(adata)` or "
            "`gde.tl.pseudobulk_embedding(adata, ...)`."
        )
    table = entry["table"].drop(columns=["n_cells"], errors="ignore").astype(np.float64)
    table.index = table.index.astype(str)
    set_key = entry.get("params", {}).get("set_key")
    if set_key is None or set_key not in adata.obs.columns:
        raise ValueError(f"adata.uns['{use_rep}']['params'] names no set_key column of obs.")
    return table, set_level_obs(adata.obs, set_key, sets=table.index)


def _time_block(z, obs, clone_key, time_key, time) -> pd.DataFrame:
    """Mean embedding per clone at one time point (chunks of a clone-time set averaged)."""
    rows = np.asarray(obs[time_key].astype(str) == str(time))
    clones = obs[clone_key].to_numpy()[rows].astype(str)
    return z.iloc[rows].groupby(clones).mean()


def _reduce(block: pd.DataFrame, n_comps: int | None) -> np.ndarray:
    x = block.to_numpy()
    if n_comps is None or n_comps >= x.shape[1]:
        return x
    return project(x, *pca(x, n_comps))


def _fate_scores(x: np.ndarray, labels: pd.Series, n_folds: int, seed: int) -> dict:
    """Cross-validated accuracy and AUC of fate from early embeddings (held-out clones)."""
    counts = labels.value_counts()
    rare = counts.index[counts < 2]
    if len(rare):
        warnings.warn(
            f"Fate(s) {list(rare)} have a single clone and are left out of the fate "
            "prediction (cross-validation needs two clones of each fate).",
            UserWarning,
            stacklevel=3,
        )
        keep = ~labels.isin(rare).to_numpy()
        x, labels, counts = x[keep], labels[keep], counts.drop(rare)
    if len(counts) < 2:
        raise ValueError("Fate prediction needs at least two fates with two clones each.")
    folds = int(min(n_folds, counts.min()))
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    y = labels.to_numpy().astype(str)
    proba = cross_val_predict(clf, x, y, cv=cv, method="predict_proba")
    classes = np.unique(y)
    pred = classes[proba.argmax(1)]
    if len(classes) == 2:
        auc = roc_auc_score(y == classes[1], proba[:, 1])
    else:
        auc = roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)
    return {
        "fate_accuracy": float(accuracy_score(y, pred)),
        "fate_auc": float(auc),
        "fate_majority_share": float(counts.max() / counts.sum()),
        "fate_folds": folds,
        "fate_n_clones": len(labels),
    }


def clone_information(
    adata: AnnData,
    *,
    early,
    late,
    clone_key: str = "clone",
    time_key: str = "time",
    use_rep: str = "X_gde",
    fate_key: str | None = None,
    k: int = 3,
    metric: str = "chebyshev",
    n_comps: int | None = None,
    n_permutations: int = 200,
    n_folds: int = 5,
    seed: int = 0,
    key_added: str = "clone_information",
) -> None:
    """Mutual information between clones' early and late embeddings, and fate prediction.

    Pairs each clone's embedding at ``early`` with its embedding at ``late`` and
    estimates their mutual information with the KSG estimator
    (:func:`gde.metrics.ksg_mutual_information`): in total and pointwise per clone, in
    bits, with a permutation p-value (the pairing shuffled). With ``fate_key``, also the
    cross-validated accuracy and AUC (one-vs-rest, macro) of a logistic regression from
    the early embedding to each clone's fate, every clone predicted by a model that did
    not see it.

    Parameters
    ----------
    adata
        The set AnnData of :meth:`gde.GDEModel.get_set_adata` (one row per clone × time
        set, embedding in ``obsm[use_rep]``), or cells whose ``uns[use_rep]`` holds set
        embeddings (``get_distribution_embeddings``, ``gde.tl.pseudobulk_embedding``).
        Sets split into chunks (``gde.pp.make_sets(..., max_cells=)``) are averaged.
    early, late
        Time points (values of ``obs[time_key]``) to pair.
    clone_key, time_key
        ``obs`` columns with each set's clone and time point.
    use_rep
        The embedding.
    fate_key
        ``obs`` column with each clone's fate (constant within clones, read at ``late``);
        ``None``: no fate prediction.
    k, metric
        Neighbours and distance of the estimator (``"chebyshev"`` or ``"euclidean"``).
    n_comps
        Reduce each time point's embeddings to this many principal components first
        (compare embeddings in the same dimension: the estimator's bias grows with it).
    n_permutations
        Shuffles of the null.
    n_folds
        Cross-validation folds of the fate prediction (fewer if a fate has fewer clones).
    seed
        Seed of the shuffles and the folds.
    key_added
        Results go to ``uns[key_added]`` and each row's clone's pointwise value to
        ``obs[f"{key_added}_pointwise"]`` (NaN for clones not present at both times).

    Returns
    -------
    ``None``; writes ``uns[key_added]``: ``mi_bits``, ``p_value``, ``null_bits``,
    ``pointwise`` (bits per clone), ``n_clones``, the fate scores (``fate_accuracy``,
    ``fate_auc``, ``fate_majority_share``) with ``fate_key``, and ``params``.
    """
    z, obs = _set_rows(adata, use_rep)
    for key in (clone_key, time_key) + ((fate_key,) if fate_key else ()):
        if key not in obs.columns:
            raise KeyError(
                f"'{key}' is not a set-level column of obs (it must be constant within "
                "each set); build sets with `gde.pp.make_sets(adata, [clone, time])`."
            )
    if obs[clone_key].isna().any():
        raise ValueError(
            f"obs['{clone_key}'] has {int(obs[clone_key].isna().sum())} missing values; "
            "every set needs its clone. Drop sets without one first."
        )
    times = pd.unique(obs[time_key].astype(str))
    for name, t in (("early", early), ("late", late)):
        if str(t) not in times:
            raise ValueError(
                f"{name}={t!r} is not a time point in obs['{time_key}']; "
                f"the data has {sorted(times)}."
            )
    if str(early) == str(late):
        raise ValueError("`early` and `late` must be different time points.")
    first = _time_block(z, obs, clone_key, time_key, early)
    second = _time_block(z, obs, clone_key, time_key, late)
    common = first.index.intersection(second.index).sort_values()
    if len(common) == 0:
        raise ValueError(
            f"No clone has sets at both {early!r} and {late!r}; check `clone_key` and the "
            "time points."
        )
    if len(common) < k + 2:
        raise ValueError(f"Only {len(common)} clones at both time points; need at least k+2.")
    x = _reduce(first.loc[common], n_comps)
    y = _reduce(second.loc[common], n_comps)
    test = mutual_information_test(
        x, y, k=k, metric=metric, n_permutations=n_permutations, seed=seed
    )
    pointwise = pd.Series(test["pointwise_bits"], index=common, name="pointwise MI (bits)")
    result = {
        "mi_bits": test["mi_bits"],
        "p_value": test["p_value"],
        "null_bits": test["null_bits"],
        "pointwise": pointwise,
        "n_clones": len(common),
    }
    if fate_key is not None:
        late_rows = np.asarray(obs[time_key].astype(str) == str(late))
        fates = obs.loc[late_rows, [clone_key, fate_key]].astype(str)
        per_clone = fates.groupby(clone_key)[fate_key]
        if (per_clone.nunique() > 1).any():
            raise ValueError(
                f"obs['{fate_key}'] varies within a clone at {late!r}; give each clone "
                "one fate (e.g. its most frequent late cell type)."
            )
        fates = per_clone.first()
        result.update(_fate_scores(x, fates.loc[common], n_folds, seed))
    result["params"] = {
        "early": str(early),
        "late": str(late),
        "clone_key": clone_key,
        "time_key": time_key,
        "use_rep": use_rep,
        "fate_key": fate_key,
        "k": k,
        "metric": metric,
        "n_comps": n_comps,
        "n_permutations": n_permutations,
    }
    adata.uns[key_added] = result
    clone_of_row = adata.obs[clone_key].astype(str) if clone_key in adata.obs else None
    if clone_of_row is not None:
        adata.obs[f"{key_added}_pointwise"] = clone_of_row.map(pointwise).astype(float)
