"""CITE-seq: genes and surface proteins in one model through MuData."""

import mudata
import numpy as np
import pytest
import scvi
import torch
from scipy import sparse

import gde
from conftest import TRAIN_KW, small_sets


def citeseq(n_sets=8, seed=0):
    """Simulated RNA + protein counts: proteins follow the cells' states."""
    rna = small_sets(n_sets=n_sets, n_genes=30, seed=seed)
    rng = np.random.default_rng(seed)
    state = rna.obs["state"].cat.codes.to_numpy()
    levels = rng.gamma(2.0, 20.0, size=(state.max() + 1, 6))
    prot_counts = rng.poisson(levels[state]).astype(np.float32)
    prot = rna[:, :6].copy()
    prot.X = sparse.csr_matrix(prot_counts)
    prot.var_names = [f"prot_{i}" for i in range(6)]
    mdata = mudata.MuData({"rna": rna, "prot": prot})
    mdata.obs = rna.obs.copy()
    return mdata


@pytest.fixture(scope="module")
def trained_mudata():
    scvi.settings.seed = 0
    mdata = citeseq()
    gde.GDEModel.setup_mudata(mdata, set_key="set", batch_key="batch")
    model = gde.GDEModel(mdata, n_latent=6, n_hidden=32, n_set_hidden=32)
    model.train(**TRAIN_KW)
    return model, mdata


def test_mudata_model_reads_both_modalities(trained_mudata):
    model, _mdata = trained_mudata
    assert model.module.modality_sizes == [30, 6]
    assert list(model.feature_names[-6:]) == [f"prot_{i}" for i in range(6)]
    assert model.module.library_log_means.shape == (2, 2)
    # one NB per modality: each block of the decoder mean sums to its own library size
    z = torch.zeros(3, model.module.n_latent_cell + model.module.n_latent)
    lib = torch.log(torch.tensor([[100.0, 7.0]] * 3))
    with torch.no_grad():
        px = model.module.decoder(z, lib, torch.zeros(3, 1, dtype=torch.long))
    np.testing.assert_allclose(px.mu[:, :30].sum(-1).numpy(), 100.0, rtol=1e-4)
    np.testing.assert_allclose(px.mu[:, 30:].sum(-1).numpy(), 7.0, rtol=1e-4)
    assert np.isfinite(model.history["elbo_train"].to_numpy(dtype=float)).all()


def test_mudata_embeddings_and_sets(trained_mudata):
    model, mdata = trained_mudata
    emb = model.get_distribution_embeddings(mdata, copy_to_cells=True)
    assert emb.shape == (8, 6) and np.isfinite(emb.to_numpy()).all()
    assert mdata.obsm["X_gde"].shape == (mdata.n_obs, 6)
    assert "X_gde" in mdata.uns
    sets = model.get_set_adata(mdata)
    assert sets.n_obs == 8 and "batch" in sets.obs
    # the proteins matter: changing them changes the embedding
    other = mdata.copy()
    other.mod["prot"].X = sparse.csr_matrix(np.full(other.mod["prot"].shape, 5.0, np.float32))
    gde.GDEModel.setup_mudata(other, set_key="set", batch_key="batch")
    emb2 = model.get_distribution_embeddings(other, key_added=None)
    assert not np.allclose(emb.to_numpy(), emb2.to_numpy(), atol=1e-4)


def test_mudata_sample_returns_both_modalities(trained_mudata):
    model, _mdata = trained_mudata
    gen = model.sample(sets=["set_0", "set_3"], n_cells=20, seed=0)
    assert isinstance(gen, mudata.MuData)
    assert gen["rna"].shape == (40, 30) and gen["prot"].shape == (40, 6)
    x = gen["prot"].X.toarray()
    assert (x >= 0).all() and np.array_equal(x, np.round(x))
    assert list(gen.obs["set"].unique()) == ["set_0", "set_3"]


def test_mudata_save_load(trained_mudata, tmp_path):
    model, mdata = trained_mudata
    model.save(tmp_path / "m")
    loaded = gde.GDEModel.load(tmp_path / "m", adata=mdata)
    np.testing.assert_allclose(
        loaded.get_distribution_embeddings(mdata, key_added=None).to_numpy(),
        model.get_distribution_embeddings(mdata, key_added=None).to_numpy(),
        rtol=1e-5,
    )


def test_setup_mudata_errors():
    mdata = citeseq(n_sets=3)
    with pytest.raises(KeyError, match="modality 'adt'"):
        gde.GDEModel.setup_mudata(mdata, set_key="set", modalities={"protein_layer": "adt"})
    with pytest.raises(KeyError, match="set_key 'sample'"):
        gde.GDEModel.setup_mudata(mdata, set_key="sample")
    with pytest.raises(TypeError, match="setup_anndata"):
        gde.GDEModel.setup_mudata(mdata["rna"], set_key="set")
    bad = mdata.copy()
    bad.mod["prot"].X = bad.mod["prot"].X * 0.5
    with pytest.raises(ValueError, match="prot"):
        gde.GDEModel.setup_mudata(bad, set_key="set")
    gde.GDEModel.setup_mudata(mdata, set_key="set")
    with pytest.raises(ValueError, match="decoder='cvae'"):
        gde.GDEModel(mdata, decoder="ddpm")
