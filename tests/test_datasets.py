"""The simulator: counts, set structure and exact ground truth."""

import numpy as np
import ot
import pytest

import gde


def test_shapes_and_counts():
    adata = gde.datasets.simulate_sets(
        n_sets=6, n_cells_per_set=(20, 40), n_genes=30, n_batches=2, seed=1
    )
    assert adata.n_vars == 30
    sizes = adata.obs["set"].value_counts()
    assert len(sizes) == 6 and sizes.between(20, 40).all()
    x = adata.X.toarray()
    assert (x >= 0).all() and np.array_equal(x, np.round(x))
    assert (x.sum(1) > 0).mean() > 0.99
    sets = adata.uns["simulation"]["sets"]
    assert list(sets.columns[:2]) == ["batch", "n_cells"]
    np.testing.assert_allclose(sets.filter(like="w_").sum(1), 1.0)
    # each set lies in one batch
    assert (adata.obs.groupby("set", observed=True)["batch"].nunique() == 1).all()


def test_reproducible_with_seed():
    a = gde.datasets.simulate_sets(n_sets=4, n_cells_per_set=10, n_genes=20, seed=3)
    b = gde.datasets.simulate_sets(n_sets=4, n_cells_per_set=10, n_genes=20, seed=3)
    c = gde.datasets.simulate_sets(n_sets=4, n_cells_per_set=10, n_genes=20, seed=4)
    assert (a.X != b.X).nnz == 0
    assert (a.X != c.X).nnz > 0


def test_ground_truth_w2_is_exact():
    adata = gde.datasets.simulate_sets(n_sets=5, n_cells_per_set=10, n_genes=25, seed=0)
    sim = adata.uns["simulation"]
    w2 = sim["w2"].to_numpy()
    assert np.allclose(w2, w2.T) and np.allclose(np.diag(w2), 0)
    # brute force for one pair
    sets = sim["sets"]
    centers, loadings = sim["state_centers"], sim["program_loadings"]
    w = np.ascontiguousarray(sets.filter(like="w_").to_numpy())
    a = sets.filter(like="a_").to_numpy()
    xs, xt = centers + a[1] @ loadings, centers + a[3] @ loadings
    expected = np.sqrt(ot.emd2(w[1], w[3], ot.dist(xs, xt)))
    assert w2[1, 3] == pytest.approx(expected, rel=1e-6)


def test_identical_parameters_give_zero_distance():
    centers = np.random.default_rng(0).normal(size=(3, 8))
    loadings = np.random.default_rng(1).normal(size=(2, 8))
    w = np.array([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    a = np.array([[0.5, -1.0], [0.5, -1.0], [0.5, -1.0]])
    d = gde.datasets.true_w2(w, a, centers, loadings)
    assert d[0, 1] == pytest.approx(0.0, abs=1e-6) and d[0, 2] > 0.1


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_sets"):
        gde.datasets.simulate_sets(n_sets=0)
    with pytest.raises(ValueError, match="at least 1"):
        gde.datasets.simulate_sets(n_sets=2, n_cells_per_set=(0, 0))
