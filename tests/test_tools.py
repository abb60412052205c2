"""Metrics, the pseudobulk baseline and the set plot."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes

import gde


def test_distance_spearman_perfect_and_aligned_by_name():
    rng = np.random.default_rng(0)
    z = pd.DataFrame(rng.normal(size=(6, 3)), index=list("abcdef"))
    truth = gde.metrics.pairwise_distances(z)
    truth = pd.DataFrame(truth, index=z.index, columns=z.index)
    shuffled = truth.loc[list("fedcba"), list("fedcba")]
    assert gde.metrics.distance_spearman(z, shuffled) == pytest.approx(1.0)
    assert gde.metrics.distance_spearman(z, -truth) == pytest.approx(-1.0)


def test_same_label_auc():
    z = np.array([[0.0], [0.1], [10.0], [10.1]])
    assert gde.metrics.same_label_auc(z, ["a", "a", "b", "b"]) == pytest.approx(1.0)
    assert gde.metrics.same_label_auc(z, ["a", "b", "a", "b"]) < 0.5
    with pytest.raises(ValueError, match="both"):
        gde.metrics.same_label_auc(z, ["a"] * 4)
    # distances given directly score the same
    d = np.abs(z - z.T)
    labels = ["a", "b", "a", "b"]
    assert gde.metrics.same_label_auc(d, labels, precomputed=True) == pytest.approx(
        gde.metrics.same_label_auc(z, labels)
    )
    with pytest.raises(ValueError, match="square"):
        gde.metrics.same_label_auc(z, labels, precomputed=True)


def test_nearest_same_label():
    z = np.array([[0.0], [0.1], [5.0], [5.3], [5.2], [20.0]])
    # a, a pair up; b's nearest is b for two of three; the lone c is not counted
    labels = ["a", "a", "b", "x", "b", "c"]
    assert gde.metrics.nearest_same_label(z, labels) == pytest.approx(3 / 4)
    d = np.abs(z - z.T)
    assert gde.metrics.nearest_same_label(d, labels, precomputed=True) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="two sets"):
        gde.metrics.nearest_same_label(z, list("abcdef"))


def test_pseudobulk_embedding(adata):
    emb = gde.tl.pseudobulk_embedding(adata, set_key="set", n_comps=3)
    assert emb.shape == (10, 3)
    assert adata.obsm["X_pseudobulk"].shape == (adata.n_obs, 3)
    copy = gde.tl.pseudobulk_embedding(adata, set_key="set", key_added="pb", copy=True)
    assert "pb" in copy.uns and "pb" not in adata.uns
    # distances equal those between set means of log-normalised expression (all components)
    full = gde.tl.pseudobulk_embedding(adata, set_key="set", n_comps=100, key_added=None)
    x = adata.X.toarray()
    logx = np.log1p(x / x.sum(1, keepdims=True) * 1e4)
    means = pd.DataFrame(logx).groupby(adata.obs["set"].to_numpy()).mean()
    np.testing.assert_allclose(
        gde.metrics.pairwise_distances(full), gde.metrics.pairwise_distances(means), atol=1e-6
    )


def test_set_embedding_plot(adata):
    gde.tl.pseudobulk_embedding(adata, set_key="set")
    ax = gde.pl.set_embedding(adata, key="X_pseudobulk", color="batch", show=False)
    assert isinstance(ax, Axes)
    assert len(ax.collections) == 2  # one scatter per batch
    sets = adata.uns["simulation"]["sets"]
    ax = gde.pl.set_embedding(adata, key="X_pseudobulk", color=sets["a_0"], show=False)
    assert isinstance(ax, Axes)
    with pytest.raises(ValueError, match="varies within sets"):
        gde.pl.set_embedding(adata, key="X_pseudobulk", color="state", show=False)
    with pytest.raises(KeyError, match="holds no set embeddings"):
        gde.pl.set_embedding(adata, key="X_nothing", show=False)
