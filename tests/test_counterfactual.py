"""Counterfactual cells: a set's cells decoded under other set embeddings."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scvi
from scipy import sparse

import gde
from conftest import TRAIN_KW, small_sets

SMALL = {"n_latent": 8, "n_hidden": 32, "n_set_hidden": 32}


@pytest.fixture(scope="module")
def count_model():
    scvi.settings.seed = 0
    adata = small_sets()
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = gde.GDEModel(adata, **SMALL)
    model.train(**TRAIN_KW)
    return model


def test_counterfactual_counts_keep_each_cell(count_model):
    model = count_model
    adata = model.adata
    emb = model.get_distribution_embeddings(sets=["set_1", "set_4"], key_added=None)
    out = model.counterfactual(emb, "set_0", seed=0)
    source = adata.obs_names[adata.obs["set"] == "set_0"]
    assert out.shape == (2 * len(source), adata.n_vars)
    assert sparse.issparse(out.X)
    x = out.X.toarray()
    assert (x >= 0).all() and np.array_equal(x, np.round(x))
    assert list(out.obs["set"].cat.categories) == ["set_1", "set_4"]
    assert list(out.obs["source_cell"][: len(source)]) == list(source)
    # each cell keeps its batch and, through the decoder's mean, its library size
    np.testing.assert_array_equal(
        out.obs["batch"][: len(source)].astype(str), adata.obs.loc[source, "batch"].astype(str)
    )
    real_lib = np.asarray(adata[source].X.sum(1)).ravel()
    assert np.corrcoef(np.log(real_lib), np.log1p(x[: len(source)].sum(1)))[0, 1] > 0.5
    again = model.counterfactual(emb, "set_0", seed=0).X.toarray()
    np.testing.assert_array_equal(x, again)
    assert not np.array_equal(x, model.counterfactual(emb, "set_0", seed=1).X.toarray())


def test_counterfactual_draws_each_cell_several_times(count_model):
    model = count_model
    emb = model.get_distribution_embeddings(sets=["set_1", "set_4"], key_added=None)
    one = model.counterfactual(emb, "set_0", seed=0)
    many = model.counterfactual(emb, "set_0", n_samples=3, seed=0)
    n = one.n_obs // 2
    assert many.n_obs == 3 * one.n_obs
    # embedding by embedding, then draw by draw, each draw over every source cell
    assert list(many.obs["draw"]) == [d for _ in range(2) for d in range(3) for _ in range(n)]
    assert (many.obs["set"].to_numpy()[: 3 * n] == "set_1").all()
    assert list(many.obs["source_cell"][n : 2 * n]) == list(one.obs["source_cell"][:n])
    x = many.X.toarray()
    assert not np.array_equal(x[:n], x[n : 2 * n])  # draws differ
    # ... of the same cells: a cell's draws share its library, so totals correlate
    per_cell = x[: 3 * n].reshape(3, n, -1).sum(-1)
    same = np.corrcoef(np.log1p(per_cell[0]), np.log1p(per_cell[1]))[0, 1]
    assert same > 0.5
    with pytest.raises(ValueError, match="n_samples"):
        model.counterfactual(emb, "set_0", n_samples=0)


def test_counterfactual_moves_cells_to_the_target_set():
    """Count sets of two cell states, each set with its own marker genes: a set's cells
    decoded under another's embedding take on its markers and keep their state."""
    rng = np.random.default_rng(0)
    n_sets, n, n_genes = 4, 150, 30
    state = rng.random(n_sets * n) < 0.5
    logits = np.zeros((n_sets * n, n_genes))
    logits[state, :10] += 2.0
    logits[~state, 10:20] += 2.0
    for i in range(n_sets):  # markers of set i: genes 20 + 2i, 21 + 2i
        logits[i * n : (i + 1) * n, 20 + 2 * i : 22 + 2 * i] += 3.0
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    names = [f"s{i}" for i in range(n_sets)]
    adata = ad.AnnData(
        sparse.csr_matrix(rng.poisson(500 * p).astype(np.float32)),
        obs=pd.DataFrame(
            {"set": pd.Categorical(np.repeat(names, n))},
            index=[f"c{i}" for i in range(n_sets * n)],
        ),
    )
    adata.var_names = [f"g{i}" for i in range(n_genes)]
    scvi.settings.seed = 0
    gde.GDEModel.setup_anndata(adata, set_key="set")
    model = gde.GDEModel(adata, **SMALL)
    model.train(
        max_steps=300, set_size=32, n_sets_per_batch=4, train_size=1.0, early_stopping=False
    )
    emb = model.get_distribution_embeddings(key_added=None)
    out = model.counterfactual(emb.loc[["s0", "s3"]], "s0", seed=0)
    for target, markers, other in (("s0", [20, 21], [26, 27]), ("s3", [26, 27], [20, 21])):
        x = out.X[(out.obs["set"] == target).to_numpy()].toarray()
        assert x[:, markers].mean() > 5 * x[:, other].mean()
        # each cell keeps its state
        assert np.mean((x[:, :10].sum(1) > x[:, 10:20].sum(1)) == state[:n]) > 0.95


def test_counterfactual_refuses_bad_input(count_model):
    model = count_model
    emb = model.get_distribution_embeddings(sets=["set_1"], key_added=None)
    with pytest.raises(TypeError, match="DataFrame"):
        model.counterfactual(emb.to_numpy(), "set_0")
    with pytest.raises(ValueError, match="shaped"):
        model.counterfactual(emb.iloc[:, :3], "set_0")
    with pytest.raises(KeyError, match="not found"):
        model.counterfactual(emb, "no_such_set")
    adata = small_sets()
    gde.GDEModel.setup_anndata(adata, set_key="set")
    ddpm = gde.GDEModel(adata, decoder="ddpm", **SMALL, n_diffusion_steps=20)
    ddpm.is_trained_ = True
    with pytest.raises(TypeError, match="decoder='cvae'"):
        ddpm.counterfactual(emb, "set_0")
