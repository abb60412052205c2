"""Statistics of the registered data that initialise a model."""

import numpy as np
import scvi
import torch
from scipy import sparse

import gde
from gde.data._stats import (
    batch_log_fold_changes,
    library_log_stats,
    log_library_sizes,
    nb_log_theta,
)


def test_nb_log_theta_recovers_known_dispersion():
    rng = np.random.default_rng(0)
    theta = np.tile([0.5, 2.0, 10.0, 50.0], 100)
    mu = np.tile([5.0, 20.0, 8.0, 30.0], 100)
    # NB as a gamma-Poisson mixture; 400 features keep library sizes nearly constant
    x = rng.poisson(rng.gamma(theta, mu / theta, size=(20_000, 400)))
    est = np.exp(nb_log_theta(sparse.csr_matrix(x)))
    for k, t in enumerate([0.5, 2.0, 10.0, 50.0]):
        assert abs(np.median(est[k::4]) / t - 1) < 0.15
    # Poisson features (no overdispersion) get the upper bound
    pois = rng.poisson(5.0, size=(5000, 2))
    assert np.allclose(nb_log_theta(pois, high=1000.0), np.log(1000.0))


def test_statistics_per_modality():
    rng = np.random.default_rng(1)
    genes = rng.poisson(20.0, size=(300, 5))
    prots = rng.poisson(200.0, size=(300, 2))
    x = np.hstack([genes, prots])
    codes = np.repeat([0, 1], 150)
    means, variances = library_log_stats(x, codes, 2, segments=[5, 2])
    assert means.shape == (2, 2)
    np.testing.assert_allclose(means[0, 0], np.log(genes[:150].sum(1)).mean())
    np.testing.assert_allclose(means[1, 1], np.log(prots[150:].sum(1)).mean())
    np.testing.assert_allclose(variances[0, 1], np.log(prots[:150].sum(1)).var())
    # per-cell log totals of each block; sparse input gives the same, empty cells count 1
    empty_first = x.copy()
    empty_first[0] = 0
    logs = log_library_sizes(sparse.csr_matrix(empty_first), segments=[5, 2])
    np.testing.assert_allclose(logs[1:, 0], np.log(genes[1:].sum(1)))
    np.testing.assert_allclose(logs[1:, 1], np.log(prots[1:].sum(1)))
    np.testing.assert_array_equal(logs[0], [0.0, 0.0])
    np.testing.assert_allclose(log_library_sizes(x), np.log(np.maximum(x.sum(1), 1))[:, None])
    # fold changes are computed within each modality, as if it were alone
    joint = batch_log_fold_changes(x, codes, 2, segments=[5, 2])
    np.testing.assert_allclose(joint[:, 5:], batch_log_fold_changes(prots, codes, 2))


def test_model_starts_from_the_moment_dispersion():
    scvi.settings.seed = 0
    adata = gde.datasets.simulate_sets(n_sets=4, n_genes=20, n_cells_per_set=50, seed=0)
    gde.GDEModel.setup_anndata(adata, set_key="set")
    model = gde.GDEModel(adata, n_latent=4)
    expected = torch.as_tensor(nb_log_theta(adata.X), dtype=torch.float32)
    torch.testing.assert_close(model.module.decoder.log_theta.detach(), expected)
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    per_batch = gde.GDEModel(adata, n_latent=4, dispersion="gene-batch")
    theta = per_batch.module.decoder.log_theta.detach()
    assert theta.shape == (20, 2)
    torch.testing.assert_close(theta[:, 1], expected)
