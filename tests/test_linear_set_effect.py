"""linear_set_effect: the set embedding also acts linearly on the decoder's output."""

import numpy as np
import pytest
import scvi
import torch

import gde
from conftest import TRAIN_KW, small_sets

SMALL = {"n_latent": 8, "n_hidden": 32, "n_set_hidden": 32}


def test_linear_skip_reads_only_the_last_inputs():
    skip = gde.nn.LinearSkip(3, 5)
    x = torch.randn(7, 10)
    assert torch.equal(skip(x), torch.zeros(7, 5))  # zero at the start
    with torch.no_grad():
        skip.weight.normal_()
    other = x.clone()
    other[:, :7] = torch.randn(7, 7)  # only the first inputs differ
    assert torch.allclose(skip(x), skip(other))
    assert torch.allclose(skip(x), x[:, -3:] @ skip.weight.T)


@pytest.mark.parametrize("decoder_cls", ["count", "normal"])
def test_a_new_decoder_with_the_skip_starts_as_one_without(decoder_cls):
    z, batch = torch.randn(6, 12), torch.zeros(6, 1, dtype=torch.long)
    outs = []
    for n_linear in (0, 4):
        torch.manual_seed(0)
        if decoder_cls == "count":
            dec = gde.nn.CountDecoder(12, 9, n_linear=n_linear)
            outs.append(dec(z, torch.full((6, 1), 5.0), batch).mean)
        else:
            dec = gde.nn.NormalDecoder(12, 9, n_linear=n_linear)
            outs.append(dec(z, batch).mean)
    assert (dec.linear is not None) and torch.allclose(outs[0], outs[1])


def test_model_with_linear_set_effect_trains_saves_and_moves_cells(tmp_path):
    scvi.settings.seed = 0
    adata = small_sets()
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = gde.GDEModel(adata, linear_set_effect=True, **SMALL)
    model.train(**TRAIN_KW)
    weight = model.module.decoder.linear.weight.detach().clone()
    assert weight.shape == (adata.n_vars, SMALL["n_latent"])
    assert weight.abs().sum() > 0  # trained away from its zero start

    model.save(str(tmp_path / "m"))
    loaded = gde.GDEModel.load(str(tmp_path / "m"), adata=adata)
    assert torch.equal(loaded.module.decoder.linear.weight, weight)
    emb = model.get_distribution_embeddings(key_added=None)
    np.testing.assert_allclose(
        loaded.get_distribution_embeddings(key_added=None).to_numpy(), emb.to_numpy(), atol=1e-5
    )
    cells = loaded.counterfactual(emb.loc[["set_1"]], "set_0", seed=0)
    assert cells.n_obs == int((adata.obs["set"] == "set_0").sum())


def test_linear_set_effect_needs_the_cvae_decoder():
    adata = small_sets()
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    with pytest.raises(ValueError, match=r"linear_set_effect.*decoder='cvae'"):
        gde.GDEModel(adata, decoder="ddpm", linear_set_effect=True, **SMALL)
