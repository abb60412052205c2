"""Reconstruction metrics against closed forms, and the Gaussian-sets data set."""

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from scipy import sparse

import gde
from gde.metrics import (
    bures_squared,
    gaussian_w2,
    gaussian_w2_matrix,
    gaussian_w2_samples,
    mean_variance_agreement,
    moment_error,
    per_set_agreement,
)


def _random_spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_gaussian_w2_one_dimension():
    # W2 between N(m1, s1²) and N(m2, s2²) is sqrt((m1-m2)² + (s1-s2)²)
    w = gaussian_w2(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[0.25]]))
    np.testing.assert_allclose(w, np.sqrt(9 + 1.5**2))
    w2 = gaussian_w2(
        np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[0.25]]), squared=True
    )
    np.testing.assert_allclose(w2, 9 + 2.25)


def test_bures_commuting_and_identity():
    rng = np.random.default_rng(0)
    d1, d2 = rng.uniform(0.1, 3, 4), rng.uniform(0.1, 3, 4)
    # diagonal covariances: sum of squared differences of standard deviations
    np.testing.assert_allclose(
        bures_squared(np.diag(d1), np.diag(d2)), ((np.sqrt(d1) - np.sqrt(d2)) ** 2).sum()
    )
    c = _random_spd(rng, 5)
    np.testing.assert_allclose(bures_squared(c, c), 0.0, atol=1e-9)
    # rotation of both covariances leaves the distance unchanged; it is symmetric
    c2 = _random_spd(rng, 5)
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    np.testing.assert_allclose(bures_squared(c, c2), bures_squared(q @ c @ q.T, q @ c2 @ q.T))
    np.testing.assert_allclose(bures_squared(c, c2), bures_squared(c2, c))
    # scaling: Bures²(Σ, kΣ) = (1 - √k)² tr Σ
    np.testing.assert_allclose(bures_squared(c, 4 * c), np.trace(c))


def test_w2_matrix_matches_pairwise_and_triangle_inequality():
    rng = np.random.default_rng(1)
    means = rng.standard_normal((6, 3))
    covs = np.stack([_random_spd(rng, 3) for _ in range(6)])
    m = gaussian_w2_matrix(means, covs)
    assert np.allclose(m, m.T) and np.allclose(np.diag(m), 0)
    np.testing.assert_allclose(m[1, 4], gaussian_w2(means[1], covs[1], means[4], covs[4]))
    np.testing.assert_allclose(gaussian_w2_matrix(means, covs, squared=True), m**2)
    for i, j, k in [(0, 1, 2), (3, 4, 5), (0, 5, 2)]:
        assert m[i, j] <= m[i, k] + m[k, j] + 1e-9


def test_sample_versions_converge_to_the_closed_form():
    rng = np.random.default_rng(2)
    c1, c2 = _random_spd(rng, 3), _random_spd(rng, 3)
    x = rng.multivariate_normal([0, 0, 0], c1, 200_000)
    y = rng.multivariate_normal([1, 0, -1], c2, 200_000)
    exact = gaussian_w2(np.zeros(3), c1, np.array([1, 0, -1]), c2, squared=True)
    np.testing.assert_allclose(gaussian_w2_samples(x, y, squared=True), exact, rtol=0.02)
    assert moment_error(x, np.zeros(3), c1) < 0.05
    assert moment_error(x, np.ones(3), c1) > np.sqrt(3) - 0.05


def test_mean_variance_agreement():
    rng = np.random.default_rng(3)
    real = rng.poisson(rng.gamma(1.0, 3.0, 50), (400, 50)).astype(np.float32)
    same = rng.poisson(real.mean(0), (400, 50)).astype(np.float32)
    scrambled = same[:, rng.permutation(50)]
    good = mean_variance_agreement(sparse.csr_matrix(same), real)
    bad = mean_variance_agreement(scrambled, real)
    assert good["mean_r"] > 0.95 and good["var_r"] > 0.9
    assert bad["mean_r"] < 0.5
    with pytest.raises(ValueError, match="same features"):
        mean_variance_agreement(real[:, :10], real)


def test_per_set_agreement_aligns_sets():
    rng = np.random.default_rng(4)
    rates = {"a": rng.gamma(1, 3, 30), "b": rng.gamma(1, 3, 30)}

    def cells(names):
        x = np.concatenate([rng.poisson(rates[n], (300, 30)) for n in names])
        return AnnData(x.astype(np.float32), obs={"set": np.repeat(names, 300)})

    real, gen = cells(["a", "b"]), cells(["b", "a"])
    table = per_set_agreement(gen, real)
    assert sorted(table.index) == ["a", "b"]
    assert (table["mean_r"] > 0.9).all()


def test_gaussian_sets_ground_truth():
    adata = gde.datasets.gaussian_sets(n_sets=20, n_samples_per_set=3000, seed=0)
    info = adata.uns["gaussian_sets"]
    assert adata.shape == (60_000, 5)
    assert (info["sets"]["split"] == "held_out").sum() == 4
    assert set(adata.obs.loc[adata.obs["split"] == "held_out", "set"]) == set(
        info["sets"].index[info["sets"]["split"] == "held_out"]
    )
    assert ((info["means"] >= 0) & (info["means"] <= 1)).all()
    assert np.all(np.linalg.eigvalsh(info["covs"]) > 0)
    np.testing.assert_allclose(
        info["w2"].to_numpy(), gaussian_w2_matrix(info["means"], info["covs"])
    )
    # the samples follow their set's Gaussian
    x = adata.X[(adata.obs["set"] == "g07").to_numpy()]
    assert gaussian_w2_samples(x, x, squared=True) == pytest.approx(0, abs=1e-9)
    np.testing.assert_allclose(x.mean(0), info["means"][7], atol=0.05)
    again = gde.datasets.gaussian_sets(n_sets=20, n_samples_per_set=3000, seed=0)
    np.testing.assert_array_equal(again.X, adata.X)
    with pytest.raises(ValueError):
        gde.datasets.gaussian_sets(held_out_fraction=1.0)


def test_energy_distance_closed_form_in_one_dimension():
    from scipy.stats import norm

    rng = np.random.default_rng(5)
    mu = 1.5
    x, y = rng.standard_normal(4000), mu + rng.standard_normal(4000)

    def mean_abs(m, s):  # E|N(m, s²)|
        return s * np.sqrt(2 / np.pi) * np.exp(-(m**2) / (2 * s**2)) + m * (
            1 - 2 * norm.cdf(-m / s)
        )

    exact = 2 * mean_abs(mu, np.sqrt(2)) - 2 * mean_abs(0, np.sqrt(2))
    assert gde.metrics.energy_distance(x, y) == pytest.approx(exact, rel=0.05)
    assert gde.metrics.energy_distance(x, x) == pytest.approx(0.0, abs=1e-9)


def test_mmd_closed_form_for_gaussians():
    rng = np.random.default_rng(6)
    d, h, delta = 2, 1.0, np.array([2.0, 0.0])
    x = rng.standard_normal((3000, d))
    y = delta + rng.standard_normal((3000, d))

    def mean_kernel(shift):  # E k(X, Y) for X - Y ~ N(shift, 2 I), Gaussian kernel h
        s2 = h**2 + 2
        return (h**2 / s2) ** (d / 2) * np.exp(-(shift @ shift) / (2 * s2))

    exact = 2 * mean_kernel(np.zeros(d)) - 2 * mean_kernel(delta)
    assert gde.metrics.mmd(x, y, bandwidth=h) == pytest.approx(exact, rel=0.1)
    same = gde.metrics.mmd(x[:1500], x[1500:], bandwidth=h)
    assert abs(same) < 0.01
    assert gde.metrics.mmd(x, y, squared=False) > 0
    with pytest.raises(ValueError, match="two points"):
        gde.metrics.mmd(x[:1], y)


def test_gmm_sets_ground_truth():
    adata = gde.datasets.gmm_sets(n_sets=10, n_samples_per_set=6000, n_dims=3, seed=1)
    info = adata.uns["gmm_sets"]
    assert adata.shape == (60_000, 3)
    assert info["weights"].shape == (10, 3) and np.allclose(info["weights"].sum(1), 1)
    assert info["means"].shape == (10, 3, 3) and info["covs"].shape == (10, 3, 3, 3)
    assert (info["sets"]["split"] == "held_out").sum() == 2
    # each set's samples follow its mixture: component frequencies, means and covariances
    s = 4
    cells = adata[(adata.obs["set"] == "m4").to_numpy()]
    comp = cells.obs["component"].to_numpy()
    np.testing.assert_allclose(
        np.bincount(comp, minlength=3) / len(comp), info["weights"][s], atol=0.03
    )
    for c in range(3):
        x = cells.X[comp == c]
        if len(x) > 500:
            np.testing.assert_allclose(x.mean(0), info["means"][s, c], atol=0.03)
            assert bures_squared(np.cov(x, rowvar=False), info["covs"][s, c]) < 1e-3
    again = gde.datasets.gmm_sets(n_sets=10, n_samples_per_set=6000, n_dims=3, seed=1)
    np.testing.assert_array_equal(again.X, adata.X)
    with pytest.raises(ValueError, match="n_components"):
        gde.datasets.gmm_sets(n_components=0)


def test_distance_spearman_takes_precomputed_distances():
    rng = np.random.default_rng(0)
    emb = pd.DataFrame(rng.normal(size=(8, 3)), index=[f"s{i}" for i in range(8)])
    truth = pd.DataFrame(
        gde.metrics.pairwise_distances(emb) + rng.random((8, 8)) * 0.1,
        index=emb.index,
        columns=emb.index,
    )
    truth = (truth + truth.T) / 2
    dist = pd.DataFrame(gde.metrics.pairwise_distances(emb), index=emb.index, columns=emb.index)
    assert gde.metrics.distance_spearman(dist, truth, precomputed=True) == pytest.approx(
        gde.metrics.distance_spearman(emb, truth)
    )
    with pytest.raises(ValueError, match="square"):
        gde.metrics.distance_spearman(emb, truth, precomputed=True)
