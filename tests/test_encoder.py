"""Distributional invariance of the set encoder, untrained and trained."""

import numpy as np
import pandas as pd
import pytest
import torch

import gde
from gde.nn import SetEncoder


def _shuffled(x, seed=0):
    g = torch.Generator().manual_seed(seed)
    return x[:, torch.randperm(x.shape[1], generator=g)]


def _replicated(x, k):
    # (n_sets, m, d) -> (n_sets, k * m, d): every element k times
    return x.repeat_interleave(k, dim=1)


@pytest.mark.parametrize("pooling", ["mean", "sum", "max"])
def test_untrained_encoder_is_permutation_invariant(pooling):
    torch.manual_seed(0)
    enc = SetEncoder(12, 5, n_hidden=16, n_blocks=2, pooling=pooling).eval()
    x = torch.randn(3, 20, 12)
    torch.testing.assert_close(enc(x), enc(_shuffled(x)), atol=1e-5, rtol=0)


@pytest.mark.parametrize("k", [2, 5])
def test_untrained_mean_encoder_is_replication_invariant(k):
    torch.manual_seed(0)
    enc = SetEncoder(12, 5, n_hidden=16, n_blocks=2, pooling="mean").eval()
    x = torch.randn(3, 20, 12)
    torch.testing.assert_close(enc(x), enc(_replicated(x, k)), atol=1e-5, rtol=0)


def test_sum_pooling_fails_the_replication_test():
    # the replication test can fail: a sum-pooled encoder sees k copies as a different set
    torch.manual_seed(0)
    enc = SetEncoder(12, 5, n_hidden=16, n_blocks=2, pooling="sum").eval()
    x = torch.randn(3, 20, 12)
    assert (enc(x) - enc(_replicated(x, 3))).abs().max() > 1e-2


def test_encoder_uses_layernorm_never_batchnorm():
    module = gde.module.SetCVAE(n_input=10, n_batch=2)
    kinds = {type(m).__name__ for m in module.modules()}
    assert "LayerNorm" in kinds
    assert not any("BatchNorm" in k for k in kinds)


def test_chunked_equals_one_shot_untrained():
    torch.manual_seed(0)
    enc = SetEncoder(6, 4, n_hidden=8, n_blocks=3).eval()
    x = torch.randn(2, 50, 6)
    flat = x.reshape(-1, 6)
    set_index = torch.arange(2).repeat_interleave(50)
    perm = torch.randperm(100)  # chunks mix the two sets in any order

    def chunks():
        for start in range(0, 100, 7):
            idx = perm[start : start + 7]
            yield flat[idx], set_index[idx], (), None

    torch.testing.assert_close(enc.forward_chunked(chunks, 2), enc(x), atol=1e-5, rtol=0)


def _with_modified_set(adata, name, k, seed=0):
    """Copy of adata where set `name` is shuffled and each of its cells repeated k times."""
    rng = np.random.default_rng(seed)
    cells = np.flatnonzero(adata.obs["set"] == name)
    others = np.flatnonzero(adata.obs["set"] != name)
    order = np.concatenate([others, np.repeat(rng.permutation(cells), k)])
    out = adata[order].copy()
    out.obs_names = [f"c{i}" for i in range(out.n_obs)]
    return out


@pytest.mark.parametrize("k", [1, 3])
def test_trained_model_embedding_is_distributionally_invariant(trained, k):
    model, full = trained
    ref = model.get_distribution_embeddings(full.copy(), key_added=None)
    modified = _with_modified_set(full, "set_3", k)
    emb = model.get_distribution_embeddings(modified, key_added=None)
    np.testing.assert_allclose(emb.loc["set_3"], ref.loc["set_3"], atol=1e-5)


def test_trained_module_dense_path_is_invariant(trained):
    model, full = trained
    x = torch.as_tensor(full[full.obs["set"] == "set_2"].X.toarray())[None]
    batch = torch.zeros(1, x.shape[1], 1, dtype=torch.long)
    module = model.module.eval()
    with torch.no_grad():
        z = module.embed(x, batch)
        z_shuffled = module.embed(_shuffled(x), batch)
        z_rep = module.embed(_replicated(x, 4), _replicated(batch, 4))
    torch.testing.assert_close(z, z_shuffled, atol=1e-5, rtol=0)
    torch.testing.assert_close(z, z_rep, atol=1e-5, rtol=0)


def test_chunked_equals_one_shot_through_model(trained):
    model, full = trained
    small_chunks = model.get_distribution_embeddings(full.copy(), batch_size=7, key_added=None)
    one_shot = model.get_distribution_embeddings(full.copy(), batch_size=10**6, key_added=None)
    pd.testing.assert_frame_equal(small_chunks, one_shot, atol=1e-5, rtol=0)
    # and both equal the dense forward pass over the whole set
    x = torch.as_tensor(full[full.obs["set"] == "set_5"].X.toarray())[None]
    b = torch.as_tensor(full[full.obs["set"] == "set_5"].obs["batch"].cat.codes.to_numpy())
    with torch.no_grad():
        dense = model.module.embed(x, b.reshape(1, -1, 1)).numpy()[0]
    np.testing.assert_allclose(one_shot.loc["set_5"], dense, atol=1e-5)
