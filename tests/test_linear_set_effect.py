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


def test_linear_only_decoders_let_the_last_inputs_act_through_the_map_alone():
    z, batch = torch.randn(6, 12), torch.zeros(6, 1, dtype=torch.long)
    moved = z.clone()
    moved[:, -4:] += torch.randn(6, 4)  # only the skipped inputs change
    count = gde.nn.CountDecoder(12, 9, n_linear=4, linear_only=True)
    lib = torch.full((6, 1), 5.0)
    # the skip starts at zero, so at first the set inputs change nothing at all
    assert torch.allclose(count(z, lib, batch).mean, count(moved, lib, batch).mean)
    normal = gde.nn.NormalDecoder(12, 9, n_linear=4, linear_only=True)
    with torch.no_grad():
        normal.linear.weight.normal_()
    a, b = normal(z, batch), normal(moved, batch)
    # the mean moves by the linear map of the change, the spread not at all
    torch.testing.assert_close(b.mean - a.mean, (moved - z)[:, -4:] @ normal.linear.weight.T)
    torch.testing.assert_close(a.stddev, b.stddev)
    with pytest.raises(ValueError, match="linear_only needs"):
        gde.nn.CountDecoder(4, 9, n_linear=4, linear_only=True)


def test_model_with_a_linear_only_set_effect_trains_and_refuses_other_values():
    scvi.settings.seed = 0
    adata = small_sets()
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = gde.GDEModel(adata, linear_set_effect="only", **SMALL)
    model.train(**TRAIN_KW)
    decoder = model.module.decoder
    assert decoder.linear_only and decoder.linear.weight.abs().sum() > 0
    # two set embeddings, five cells: the change of log rates is the same for every cell
    # (up to each cell's softmax normaliser)
    u = torch.randn(5, model.module.n_latent_cell)
    c1, c2 = torch.randn(1, SMALL["n_latent"]), torch.randn(1, SMALL["n_latent"])
    lib, batch = torch.full((5, 1), 6.0), torch.zeros(5, 1, dtype=torch.long)
    with torch.no_grad():
        rates = [decoder(torch.cat([u, c.expand(5, -1)], 1), lib, batch).mean for c in (c1, c2)]
    change = rates[1].log() - rates[0].log()
    change = change - change.mean(1, keepdim=True)
    torch.testing.assert_close(change, change[:1].expand_as(change), atol=1e-4, rtol=0)
    assert change.abs().max() > 1e-3  # and the set does move them
    with pytest.raises(ValueError, match="True, False or 'only'"):
        gde.GDEModel(adata, linear_set_effect="yes", **SMALL)
