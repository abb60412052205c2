"""Bad input gets a clear error before any work is done."""

import numpy as np
import pytest
import torch
from scipy import sparse

import gde
from conftest import TRAIN_KW
from gde.model import TrainingDivergedError


def _model(adata, **kw):
    return gde.GDEModel(adata, n_latent=4, n_hidden=16, n_set_hidden=16, **kw)


def test_missing_set_key(adata):
    with pytest.raises(KeyError, match="set_key 'clone' is not a column"):
        gde.GDEModel.setup_anndata(adata, set_key="clone")


def test_nan_set_labels(adata):
    adata.obs["set"] = adata.obs["set"].astype(object)
    adata.obs.iloc[:3, adata.obs.columns.get_loc("set")] = np.nan
    with pytest.raises(ValueError, match="3 cells with a missing"):
        gde.GDEModel.setup_anndata(adata, set_key="set")


def test_missing_layer(adata):
    with pytest.raises(KeyError, match="Layer 'counts' not found"):
        gde.GDEModel.setup_anndata(adata, set_key="set", layer="counts")


def test_missing_batch_key(adata):
    with pytest.raises(KeyError, match="batch_key 'run'"):
        gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="run")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_data(adata, bad):
    adata.X = adata.X.toarray()
    adata.X[5, 3] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        gde.GDEModel.setup_anndata(adata, set_key="set")


def test_negative_values_with_count_likelihood(adata):
    adata.X = adata.X.copy()
    adata.X.data[0] = -1.0
    gde.GDEModel.setup_anndata(adata, set_key="set")
    with pytest.raises(ValueError, match="negative values"):
        _model(adata, likelihood="nb")


def test_non_integer_values_with_count_likelihood(adata):
    adata.X = sparse.csr_matrix(np.log1p(adata.X.toarray()))
    gde.GDEModel.setup_anndata(adata, set_key="set")
    with pytest.raises(ValueError, match="non-integer values"):
        _model(adata, likelihood="zinb")
    with pytest.warns(UserWarning, match="modelling it as continuous"):
        model = _model(adata)  # no likelihood given: continuous features
    assert model.module.likelihood == "normal"


def test_empty_cells(adata):
    x = adata.X.toarray()
    x[4] = 0
    adata.X = sparse.csr_matrix(x)
    gde.GDEModel.setup_anndata(adata, set_key="set")
    with pytest.raises(ValueError, match="1 cells have no counts"):
        _model(adata)


def test_unknown_decoder_and_likelihood(adata):
    gde.GDEModel.setup_anndata(adata, set_key="set")
    with pytest.raises(ValueError, match="decoder must be"):
        _model(adata, decoder="gan")
    with pytest.raises(ValueError, match="likelihood must be"):
        _model(adata, likelihood="gaussian")


def test_copy_after_setup(adata):
    gde.GDEModel.setup_anndata(adata, set_key="set")
    copied = adata.copy()
    with pytest.raises(ValueError, match="copy of one registered"):
        _model(copied)


def test_genes_differ_at_inference(trained):
    model, full = trained
    with pytest.raises(ValueError, match="1 missing"):
        model.get_distribution_embeddings(full[:, 1:].copy())
    renamed = full.copy()
    renamed.var_names = [f"g{i}" for i in range(renamed.n_vars)]
    with pytest.raises(ValueError, match="genes differ"):
        model.get_distribution_embeddings(renamed)
    reordered = full[:, ::-1].copy()
    with pytest.raises(ValueError, match="different order"):
        model.get_distribution_embeddings(reordered)


def test_non_counts_at_inference(trained):
    model, full = trained
    bad = full.copy()
    bad.X = sparse.csr_matrix(np.log1p(bad.X.toarray()))
    with pytest.raises(ValueError, match="non-integer"):
        model.get_distribution_embeddings(bad)
    assert "X_gde" not in bad.obsm  # nothing written


def test_inference_needs_the_set_column(trained):
    model, full = trained
    bad = full.copy()
    del bad.obs["set"]
    with pytest.raises(KeyError, match="set_key 'set'"):
        model.get_distribution_embeddings(bad)


def test_save_over_existing_folder(trained, tmp_path):
    model, _ = trained
    target = tmp_path / "m"
    target.mkdir()
    (target / "keep.txt").write_text("user file")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(str(target))
    assert (target / "keep.txt").read_text() == "user file"
    model.save(str(target), overwrite=True)
    assert (target / "model.pt").exists()


def test_nan_loss_stops_training_with_advice(adata):
    gde.GDEModel.setup_anndata(adata, set_key="set")
    model = _model(adata)
    original = model.module.loss
    calls = {"n": 0}

    def diverging_loss(tensors, inference_outputs, generative_outputs, kl_weight=1.0):
        out = original(tensors, inference_outputs, generative_outputs, kl_weight=kl_weight)
        calls["n"] += 1
        if calls["n"] >= 3:
            object.__setattr__(out, "loss", out.loss * torch.nan)
        return out

    model.module.loss = diverging_loss
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    with pytest.raises(TrainingDivergedError, match="lower learning rate"):
        model.train(**{**TRAIN_KW, "max_epochs": 5})
    after = model.module.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert any(not torch.equal(before[k], after[k]) for k in before)  # first steps happened
    assert not model.is_trained
