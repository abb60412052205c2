import numpy as np
import pandas as pd
import pytest

from gde._anndata_utils import set_level_obs


def test_set_level_obs_keeps_constant_columns():
    obs = pd.DataFrame(
        {
            "set": ["a", "a", "b", "b", "b", "c"],
            "donor": pd.Categorical(["d1", "d1", "d2", "d2", "d2", "d1"]),
            "age": [30, 30, 50, 50, 50, 30],
            "cell_type": ["T", "B", "T", "T", "B", "T"],
            "tp": [np.nan, np.nan, 1.0, 1.0, 1.0, 2.0],
        }
    )
    out = set_level_obs(obs, "set", sets=["c", "a", "b"])
    assert list(out.index) == ["c", "a", "b"]
    assert list(out.columns) == ["n_cells", "donor", "age", "tp"]  # cell_type varies
    assert out["n_cells"].tolist() == [1, 2, 3]
    assert out["donor"].tolist() == ["d1", "d1", "d2"]
    assert isinstance(out["donor"].dtype, pd.CategoricalDtype)
    assert out["age"].tolist() == [30, 30, 50]
    assert np.isnan(out.loc["a", "tp"]) and out.loc["c", "tp"] == 2.0
    with pytest.raises(KeyError, match="not in obs"):
        set_level_obs(obs, "set", sets=["a", "zz"])


def test_get_set_adata(trained):
    model, full = trained
    before = full.copy()
    sets = model.get_set_adata(full)

    # the user's AnnData is left as it was, apart from scvi-tools' registration keys
    def user_keys(keys):
        return {k for k in keys if not str(k).startswith("_scvi")}

    assert set(full.obsm) == set(before.obsm)
    assert user_keys(full.uns) == user_keys(before.uns)
    assert user_keys(full.obs.columns) == user_keys(before.obs.columns)
    emb = model.get_distribution_embeddings(full, key_added=None)
    assert list(sets.obs_names) == list(emb.index)
    np.testing.assert_allclose(sets.obsm["X_gde"], emb.to_numpy(), rtol=1e-5, atol=1e-6)
    counts = full.obs["set"].astype(str).value_counts()
    assert (sets.obs["n_cells"] == counts.loc[sets.obs_names]).all()
    # batch is nested in sets in the simulation: a set-level column; "state" is per cell
    assert "batch" in sets.obs and "state" not in sets.obs
    assert not any(c.startswith("_scvi") for c in sets.obs.columns)
    d = sets.obsp["X_gde_distances"]
    z = emb.to_numpy()
    np.testing.assert_allclose(d[1, 4], np.linalg.norm(z[1] - z[4]), rtol=1e-5)
    table = model.get_distribution_distances(full)
    np.testing.assert_allclose(table.to_numpy(), d, rtol=1e-6)
    assert list(table.index) == list(sets.obs_names)


def test_set_adata_works_with_scanpy(trained):
    sc = pytest.importorskip("scanpy")
    model, full = trained
    sets = model.get_set_adata(full, key_added="X_emb")
    sc.pp.neighbors(sets, use_rep="X_emb", n_neighbors=3)
    sc.tl.umap(sets, random_state=0)
    sc.tl.leiden(sets, resolution=0.5, flavor="igraph", n_iterations=2, directed=False)
    assert sets.obsm["X_umap"].shape == (sets.n_obs, 2)
    assert sets.obs["leiden"].notna().all()
    ax = sc.pl.umap(sets, color="batch", show=False)
    assert ax is not None
