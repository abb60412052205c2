"""The set-conditioned mixture prior of the per-cell latent."""

import numpy as np
import pytest
import scvi
import torch

import gde
from conftest import TRAIN_KW, small_sets


def test_mixture_prior_density_by_hand():
    torch.manual_seed(0)
    prior = gde.nn.SetMixturePrior(n_latent_set=3, n_latent_cell=2, n_components=4)
    z = torch.randn(5, 3)
    u = torch.randn(5, 2)
    with torch.no_grad():
        dist = prior(z)
        log_w = torch.log_softmax(prior.logits(z), -1)  # (5, 4)
        scales = prior.log_scales.exp()
        comp = torch.distributions.Normal(prior.means, scales).log_prob(u[:, None]).sum(-1)
        expected = torch.logsumexp(log_w + comp, dim=-1)
        torch.testing.assert_close(dist.log_prob(u), expected)
        # the weights are the set's: two sets get two mixtures
        assert not torch.allclose(
            dist.mixture_distribution.probs[0], dist.mixture_distribution.probs[1]
        )
    with pytest.raises(ValueError, match="n_components"):
        gde.nn.SetMixturePrior(3, 2, n_components=0)


def test_model_with_mixture_prior_trains_and_generates():
    scvi.settings.seed = 0
    adata = small_sets(n_sets=6)
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = gde.GDEModel(adata, n_latent=4, n_hidden=32, n_set_hidden=32, prior="mixture")
    model.train(**TRAIN_KW)
    loss = model.history["elbo_train"].to_numpy(dtype=float)
    assert np.isfinite(loss).all()
    gen = model.sample(sets=["set_0"], n_cells=50, seed=0)
    x = gen.X.toarray()
    assert gen.shape == (50, adata.n_vars) and (x >= 0).all()
    again = model.sample(sets=["set_0"], n_cells=50, seed=0)
    np.testing.assert_array_equal(again.X.toarray(), x)
    with pytest.raises(ValueError, match="prior must be"):
        gde.GDEModel(adata, prior="vamp")
