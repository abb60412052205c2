"""GDEModel end to end: train, embed seen and unseen sets, save and load."""

import numpy as np
import pandas as pd
import pytest
import scvi
from scipy import sparse

import gde
from conftest import TRAIN_KW, small_sets


def test_train_records_history_and_sets(trained):
    model, _ = trained
    assert model.is_trained
    for key in ("train_loss", "elbo_train", "elbo_validation", "reconstruction_loss_train"):
        assert key in model.history
    assert len(model.history["elbo_train"]) == TRAIN_KW["max_epochs"]
    assert np.isfinite(model.history["elbo_train"].to_numpy(dtype=float)).all()
    assert len(model.train_sets_) + len(model.validation_sets_) == 8
    assert not set(model.train_sets_) & set(model.validation_sets_)


def test_training_lowers_the_loss():
    scvi.settings.seed = 0
    adata = small_sets(n_sets=8)
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = gde.GDEModel(adata, n_latent=8, n_hidden=32, n_set_hidden=32)
    model.train(**{**TRAIN_KW, "max_epochs": 15}, early_stopping=False)
    elbo = model.history["elbo_train"]["elbo_train"].to_numpy(dtype=float)
    assert elbo[-3:].mean() < elbo[:3].mean()


def test_embeddings_written_to_adata(trained):
    model, _ = trained
    adata = model.adata
    emb = model.get_distribution_embeddings()
    assert "X_gde" not in adata.obsm  # the per-cell copy is opt-in
    emb = model.get_distribution_embeddings(copy_to_cells=True)
    assert emb.shape == (8, 8)
    assert list(emb.index) == [f"set_{i}" for i in range(8)]
    assert emb.index.name == "set"
    table = adata.uns["X_gde"]["table"]
    assert table["n_cells"].sum() == adata.n_obs
    np.testing.assert_allclose(table.drop(columns="n_cells").to_numpy(), emb.to_numpy())
    assert adata.uns["X_gde"]["params"]["set_key"] == "set"
    z = adata.obsm["X_gde"]
    assert z.shape == (adata.n_obs, 8)
    for name in ("set_0", "set_5"):
        rows = z[(adata.obs["set"] == name).to_numpy()]
        np.testing.assert_allclose(rows, np.tile(emb.loc[name].to_numpy(), (len(rows), 1)))


def test_unseen_sets_are_embedded_without_retraining(trained):
    model, full = trained
    new = full[full.obs["set"].isin(["set_8", "set_9", "set_1"])].copy()
    new.obs["set"] = new.obs["set"].cat.rename_categories(lambda s: s.replace("set", "new"))
    emb = model.get_distribution_embeddings(new)
    assert sorted(emb.index) == ["new_1", "new_8", "new_9"]
    assert np.isfinite(emb.to_numpy()).all()
    seen = model.get_distribution_embeddings(full.copy(), key_added=None)
    np.testing.assert_allclose(emb.loc["new_1"], seen.loc["set_1"], atol=1e-5)


def test_subset_of_sets(trained):
    model, full = trained
    adata = full.copy()
    emb = model.get_distribution_embeddings(
        adata, sets=["set_2", "set_9"], key_added="X_sub", copy_to_cells=True
    )
    assert list(emb.index) == ["set_2", "set_9"]
    z = adata.obsm["X_sub"]
    embedded = adata.obs["set"].isin(["set_2", "set_9"]).to_numpy()
    assert np.isfinite(z[embedded]).all() and np.isnan(z[~embedded]).all()
    with pytest.raises(KeyError, match="not found"):
        model.get_distribution_embeddings(adata, sets=["set_2", "nope"])


def test_save_load_round_trip(trained, tmp_path):
    model, full = trained
    before = model.get_distribution_embeddings(full.copy(), key_added=None)
    model.save(str(tmp_path / "m"))
    adata = model.adata.copy()
    loaded = gde.GDEModel.load(str(tmp_path / "m"), adata=adata)
    after = loaded.get_distribution_embeddings(full.copy(), key_added=None)
    pd.testing.assert_frame_equal(before, after, atol=0, rtol=0)
    assert list(loaded.train_sets_) == list(model.train_sets_)
    assert loaded.is_trained


def test_repr_and_setup_view(trained, capsys):
    model, _ = trained
    print(model)
    text = " ".join(capsys.readouterr().out.split())
    assert "GDEModel" in text and "8 sets" in text and "likelihood='nb'" in text
    assert "Training status: Trained" in text
    model.view_anndata_setup()
    out = capsys.readouterr().out
    assert "Number of sets" in out and "batch" in out


@pytest.mark.parametrize("likelihood", ["zinb", "poisson"])
def test_other_likelihoods_train(adata, likelihood):
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = gde.GDEModel(adata, n_latent=4, n_hidden=16, n_set_hidden=16, likelihood=likelihood)
    model.train(**{**TRAIN_KW, "max_epochs": 1})
    assert np.isfinite(model.get_distribution_embeddings().to_numpy()).all()


def test_covariates_and_counts_layer(adata):
    adata.layers["counts"] = adata.X.copy()
    adata.X = sparse.csr_matrix(np.log1p(adata.X.toarray()))  # X is not counts here
    rng = np.random.default_rng(0)
    adata.obs["site"] = rng.choice(["a", "b", "c"], adata.n_obs)
    adata.obs["percent_mito"] = rng.random(adata.n_obs)
    gde.GDEModel.setup_anndata(
        adata,
        set_key="set",
        layer="counts",
        batch_key="batch",
        categorical_covariate_keys=["site"],
        continuous_covariate_keys=["percent_mito"],
    )
    for encode in (False, True):
        model = gde.GDEModel(
            adata,
            n_latent=4,
            n_hidden=16,
            n_set_hidden=16,
            encode_covariates=encode,
            dispersion="gene-batch",
        )
        model.train(**{**TRAIN_KW, "max_epochs": 1})
        assert np.isfinite(model.get_distribution_embeddings().to_numpy()).all()


def test_user_adata_changes_only_at_documented_keys(adata):
    before_obs = adata.obs.copy()
    before_x = adata.X.copy()
    before_uns = set(adata.uns)
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = gde.GDEModel(adata, n_latent=4, n_hidden=16, n_set_hidden=16)
    model.train(**{**TRAIN_KW, "max_epochs": 1})
    model.get_distribution_embeddings()
    assert (adata.X != before_x).nnz == 0
    pd.testing.assert_frame_equal(adata.obs[before_obs.columns], before_obs)
    assert set(adata.obs.columns) - set(before_obs.columns) == {"_scvi_set", "_scvi_batch"}
    assert set(adata.uns) - before_uns == {"_scvi_uuid", "_scvi_manager_uuid", "X_gde"}
    assert not adata.obsm and not adata.layers and not adata.varm  # per-cell copy: opt-in


def test_default_step_cap_grows_with_the_number_of_sets():
    from gde.model._budget import default_max_steps, resolve_steps

    assert default_max_steps(5) == 4000
    assert default_max_steps(60) == 6000
    assert default_max_steps(10_000) == 20000
    assert resolve_steps(None, 3, 100, 40) == 300
    assert resolve_steps(250, None, 100, 40) == 250
    with pytest.raises(ValueError, match="either max_steps or max_epochs"):
        resolve_steps(10, 1, 100, 40)


def test_min_set_size_excludes_and_reports(adata):
    gde.GDEModel.setup_anndata(adata, set_key="set")
    model = gde.GDEModel(adata, n_latent=4, n_hidden=16, n_set_hidden=16)
    with pytest.warns(UserWarning, match="fewer than min_set_size=45"):
        model.train(**{**TRAIN_KW, "max_epochs": 1}, min_set_size=45)
    sizes = adata.obs["set"].value_counts()
    assert set(model.excluded_sets_) == set(sizes[sizes < 45].index)
    emb = model.get_distribution_embeddings()  # small sets are still embedded
    assert set(model.excluded_sets_) <= set(emb.index)
