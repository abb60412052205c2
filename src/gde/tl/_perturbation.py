"""Perturbation prediction: from perturbation features to set embeddings and expression.

A perturbation's cells are a set. A linear map, fitted on the training perturbations,
takes a perturbation's features (one-hot genes or compounds, combinations as sums, or a
user's feature table) to the shift of its set embedding from the control set of the same
context; the trained model's decoder turns a predicted embedding into cells. The same
features feed the linear baselines, which predict mean expression directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from gde._anndata_utils import (
    check_obs_columns,
    get_data,
    group_membership,
    log_normalize,
    set_codes,
    to_dense,
)
from gde._perturbations import split_perturbations

from ._ridge import fit_blocks


def perturbation_design(
    labels: Sequence[str],
    *,
    control: str,
    separator: str = "+",
    features: pd.DataFrame | None = None,
    vocabulary: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Feature rows of perturbations: one-hot or feature-table rows, summed over parts.

    Parameters
    ----------
    labels
        Perturbation labels.
    control
        The control label (a row of zeros).
    separator
        What joins the parts of a combination.
    features
        Table with one row per gene or compound (index: its name); ``None``: one-hot
        over ``vocabulary``.
    vocabulary
        Names of the one-hot columns (default: every part of ``labels``).

    Returns
    -------
    Labels × features.
    """
    parts = split_perturbations(labels, control=control, separator=separator)
    if features is None:
        names = (
            list(vocabulary)
            if vocabulary is not None
            else sorted({q for p in parts.values() for q in p})
        )
        features = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    missing = sorted({q for p in parts.values() for q in p} - set(map(str, features.index)))
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise KeyError(
            f"{len(missing)} perturbed gene(s)/compound(s) have no row in the feature "
            f"table: {shown}. Add rows for them (index = the name) or leave them out."
        )
    table = features.set_axis(features.index.astype(str)).astype(np.float64)
    rows = [
        table.loc[list(p)].sum(0).to_numpy() if p else np.zeros(table.shape[1])
        for p in parts.values()
    ]
    return pd.DataFrame(np.array(rows), index=list(parts), columns=table.columns)


def _groups(obs: pd.DataFrame, labels, perturbation_key: str, context_key: str | None):
    """Per group (set): its perturbation and context; each must be one value per group.

    ``labels``: each cell's group (set) label.
    """
    keys = {"perturbation": perturbation_key, "context": context_key}
    keys = {k: v for k, v in keys.items() if v}
    for key in keys.values():
        if key not in obs.columns:
            raise KeyError(f"'{key}' is not a column of adata.obs.")
        if obs[key].isna().any():
            raise ValueError(f"adata.obs['{key}'] has missing values; fill or drop them.")
    table = pd.DataFrame({k: obs[v].astype(str).to_numpy() for k, v in keys.items()})
    table["group"] = np.asarray(labels).astype(str)
    counts = table.groupby("group")[list(keys)].nunique()
    mixed = counts.index[(counts > 1).any(axis=1)]
    if len(mixed):
        raise ValueError(
            f"Set '{mixed[0]}' holds cells of several perturbations or contexts; each set "
            f"must be one perturbation{' in one context' if context_key else ''} "
            "(`gde.pp.make_sets` builds such sets from the two columns)."
        )
    table = table.groupby("group").first()
    if not context_key:
        table["context"] = ""
    return table


def _shifts(values: pd.DataFrame, groups: pd.DataFrame, control: str):
    """Control value per context, and each other group's value minus its context's."""
    ctrl = groups.index[groups["perturbation"] == control]
    if not len(ctrl):
        raise ValueError(
            f"No control set: no set has perturbation '{control}'. Pass the control "
            "label your data uses (`control=`)."
        )
    base = {groups.loc[s, "context"]: values.loc[s].to_numpy() for s in ctrl}
    train = groups.index[groups["perturbation"] != control]
    shifts = np.stack([values.loc[s].to_numpy() - base[groups.loc[s, "context"]] for s in train])
    return base, pd.DataFrame(shifts, index=train, columns=values.columns)


def _ridge_on_shifts(shifts: pd.DataFrame, groups: pd.DataFrame, blocks, alpha):
    """Fit the shifts on the design blocks; returns the design and ``(intercept, w, choice)``."""
    rows = groups.loc[shifts.index, "perturbation"]
    fit = fit_blocks([b.loc[rows].to_numpy() for b in blocks], shifts.to_numpy(), alpha)
    return pd.concat(blocks, axis=1), fit


def _requests(perturbations, contexts, base: dict) -> list[tuple[str, str]]:
    contexts = list(base) if contexts is None else [str(c) for c in contexts]
    unknown = [c for c in contexts if c not in base]
    if unknown:
        raise ValueError(f"No control set in context(s) {unknown}; contexts: {list(base)}.")
    return [(str(p), c) for c in contexts for p in perturbations]


def _label(p: str, c: str) -> str:
    return f"{p} | {c}" if c else p


def predict_perturbation_embeddings(
    model,
    adata: AnnData | None = None,
    *,
    perturbation_key: str,
    control: str,
    perturbations: Sequence[str],
    context_key: str | None = None,
    contexts: Sequence[str] | None = None,
    features: pd.DataFrame | None = None,
    separator: str = "+",
    one_hot: bool = True,
    alpha: float | None = None,
) -> pd.DataFrame:
    """Predict the set embeddings of perturbations, seen or not, for ``model.sample``.

    The sets of ``adata`` (the model's ``set_key``) must each be one perturbation (in one
    context). Their embeddings, minus the embedding of the control set of the same
    context, are regressed (ridge, intercept unpenalised) on the perturbations'
    design: the rows of a feature table and a multi-hot of the perturbed genes seen in
    training, each block with its own penalty chosen by leave-one-out over the training
    perturbations. A prediction is the control embedding of the context asked for plus
    the predicted shift. Combinations are the sums of their parts' rows, so a pair of
    genes each seen (alone or in another pair), or never seen but with feature rows, can
    be predicted. Decode the predictions with :meth:`~gde.GDEModel.counterfactual`
    (the control cells moved to each prediction) or :meth:`~gde.GDEModel.sample`. Build
    the model with ``GDEModel(..., linear_set_effect="only")`` (or ``True``) and train it
    with ``train(weight_ema=0.999)``: shifts of the embedding that add up then give
    changes of log expression that add up.

    Parameters
    ----------
    model
        A trained :class:`gde.GDEModel` (or any set model).
    adata
        The training cells (default: the model's AnnData); held-out perturbations must
        not be among its sets.
    perturbation_key
        ``obs`` column with each cell's perturbation label.
    control
        The control label.
    perturbations
        Labels to predict (single or combinations).
    context_key, contexts
        ``obs`` column of the cell context (cell line, cell type) and the contexts to
        predict in (default: every context with a control set).
    features
        Feature table, one row per gene or compound (gene embeddings, compound
        descriptors); ``None``: the multi-hot block alone.
    separator
        What joins the parts of a combination.
    one_hot
        Add the multi-hot of the perturbed genes seen in training to the design (a gene
        never seen adds nothing there; without ``features`` its prediction falls back to
        the average training shift).
    alpha
        Ridge penalty of every column; ``None``: each block's penalty chosen from
        0.01 to 1,000 by the leave-one-out error over the training perturbations.

    Returns
    -------
    Predicted embeddings, one row per perturbation (``"label | context"`` with a
    context), columns as :meth:`~gde.GDEModel.get_distribution_embeddings`, for
    ``model.counterfactual`` or ``model.sample(embeddings=...)``. ``.attrs["ridge"]``
    holds the penalties used and their leave-one-out error (relative to predicting the
    average shift).
    """
    adata = model.adata if adata is None else adata
    if model.set_key not in adata.obs.columns:
        raise KeyError(f"The model's set_key '{model.set_key}' is not a column of adata.obs.")
    groups = _groups(adata.obs, adata.obs[model.set_key], perturbation_key, context_key)
    emb = model.get_distribution_embeddings(adata, key_added=None)
    _, blocks = _design(groups, perturbations, control, separator, features, one_hot)
    base, shifts = _shifts(emb.loc[groups.index], groups, control)
    design, (intercept, w, choice) = _ridge_on_shifts(shifts, groups, blocks, alpha)
    requests = _requests(perturbations, contexts, base)
    z = [base[c] + intercept + design.loc[p].to_numpy() @ w for p, c in requests]
    out = pd.DataFrame(np.array(z), index=[_label(p, c) for p, c in requests], columns=emb.columns)
    out.attrs["ridge"] = choice
    return out


def _design(groups, perturbations, control, separator, features, one_hot):
    """Parts, and design blocks, of the training groups' and the requested perturbations.

    Blocks: the feature table's rows (summed over parts), and, with ``one_hot``, a
    multi-hot of the parts seen in training (a part never seen has a row of zeros).
    """
    if features is None and not one_hot:
        raise ValueError("Nothing to predict from: pass `features=` or leave one_hot=True.")
    labels = list(groups["perturbation"].unique()) + [str(p) for p in perturbations]
    parts = split_perturbations(labels, control=control, separator=separator)
    blocks = []
    if features is not None:
        blocks.append(
            perturbation_design(labels, control=control, separator=separator, features=features)
        )
    if one_hot:
        seen = sorted({q for p in groups["perturbation"] for q in parts[p]})
        hot = perturbation_design(
            labels,
            control=control,
            separator=separator,
            features=_one_hot_with_unseen(seen, parts),
        )
        blocks.append(hot.add_prefix("perturbed: "))
    return parts, blocks


def _one_hot_with_unseen(vocab: list[str], parts: dict) -> pd.DataFrame:
    """One-hot over ``vocab``; parts outside it get a row of zeros."""
    names = vocab + sorted({q for p in parts.values() for q in p} - set(vocab))
    table = np.zeros((len(names), len(vocab)))
    table[np.arange(len(vocab)), np.arange(len(vocab))] = 1.0
    return pd.DataFrame(table, index=names, columns=vocab)


def perturbation_means(
    adata: AnnData, *, group_key: str, layer: str | None = None, target_sum: float = 1e4
) -> pd.DataFrame:
    """Mean log1p expression (counts scaled to ``target_sum``) of each group, groups × genes."""
    check_obs_columns(adata, [group_key], "group_key")
    return _group_means(adata, adata.obs[group_key], layer, target_sum)


def _group_means(adata, labels, layer=None, target_sum: float = 1e4) -> pd.DataFrame:
    codes, names = set_codes(labels)
    x = log_normalize(get_data(adata, layer), target_sum)
    member = group_membership(codes, len(names))
    sums = to_dense(member @ x)
    sizes = np.asarray(member.sum(1)).reshape(-1, 1)
    return pd.DataFrame(sums / sizes, index=names, columns=adata.var_names.astype(str))


def perturbation_baselines(
    adata: AnnData,
    *,
    perturbation_key: str,
    control: str,
    perturbations: Sequence[str],
    context_key: str | None = None,
    contexts: Sequence[str] | None = None,
    features: pd.DataFrame | None = None,
    separator: str = "+",
    one_hot: bool = True,
    alpha: float | None = None,
    layer: str | None = None,
) -> dict[str, pd.DataFrame]:
    """The simple baselines' predicted mean expression for perturbations.

    All work on mean log1p expression per 10,000 counts (:func:`perturbation_means`) of
    the training cells in ``adata``, per context:

    - ``"no change"``: the control's mean;
    - ``"training mean"``: control plus the average shift of the training perturbations;
    - ``"additive"``: control plus the sum of the observed shifts of a combination's
      parts (a part never seen alone adds nothing; for a single perturbation not seen,
      this is ``"no change"``);
    - ``"linear"``: control plus a ridge regression of the shifts on the same design
      as :func:`predict_perturbation_embeddings` (feature table and multi-hot, penalties
      by leave-one-out).

    Parameters
    ----------
    adata, perturbation_key, control, perturbations, context_key, contexts, features
        As in :func:`predict_perturbation_embeddings`; the sets are the perturbation (×
        context) groups of ``adata``.
    separator, one_hot, alpha
        As in :func:`predict_perturbation_embeddings`.
    layer
        Layer with the counts (default ``X``).

    Returns
    -------
    Baseline name to a perturbations × genes table (rows labelled as the embeddings).
    """
    check_obs_columns(adata, [k for k in (perturbation_key, context_key) if k], "column")
    labels = adata.obs[perturbation_key].astype(str)
    if context_key:
        labels = labels + " | " + adata.obs[context_key].astype(str)
    groups = _groups(adata.obs, labels, perturbation_key, context_key)
    means = _group_means(adata, labels, layer).loc[groups.index]
    parts, blocks = _design(groups, perturbations, control, separator, features, one_hot)
    base, shifts = _shifts(means, groups, control)
    design, (intercept, w, choice) = _ridge_on_shifts(shifts, groups, blocks, alpha)
    requests = _requests(perturbations, contexts, base)
    single = {
        (parts[p][0], groups.loc[s, "context"]): shifts.loc[s].to_numpy()
        for s, p in groups.loc[shifts.index, "perturbation"].items()
        if len(parts[p]) == 1
    }
    train_shift = shifts.to_numpy().mean(0)
    zero = np.zeros(means.shape[1])
    out = {"no change": [], "training mean": [], "additive": [], "linear": []}
    for p, c in requests:
        out["no change"].append(base[c])
        out["training mean"].append(base[c] + train_shift)
        out["additive"].append(base[c] + sum((single.get((q, c), zero) for q in parts[p]), zero))
        out["linear"].append(base[c] + intercept + design.loc[p].to_numpy() @ w)
    index = [_label(p, c) for p, c in requests]
    tables = {
        k: pd.DataFrame(np.array(v), index=index, columns=means.columns) for k, v in out.items()
    }
    tables["linear"].attrs["ridge"] = choice
    return tables
