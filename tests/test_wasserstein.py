import anndata as ad
import numpy as np
import ot
import pandas as pd
import pytest

import gde


def _cells(rng, shifts, n=40, d=3):
    x = np.vstack([rng.normal(size=(n, d)) + s for s in shifts])
    labels = np.repeat([f"s{i}" for i in range(len(shifts))], n)
    a = ad.AnnData(np.zeros((len(x), 2), dtype=np.float32), obs=pd.DataFrame({"set": labels}))
    a.obs_names = [f"c{i}" for i in range(a.n_obs)]
    a.obsm["X_pca"] = x
    return a


def test_translation_and_solver_agreement():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 3))
    v = np.array([3.0, -1.0, 2.0])
    a = _cells(rng, [0, 0, 0])
    a.obsm["X_pca"] = np.vstack([base, base + v, rng.normal(size=(40, 3))])
    before = a.obs.copy()
    w2 = gde.tl.wasserstein_distances(a, set_key="set", n_cells=None)
    # a translated copy is exactly ||v|| away; the matrix is symmetric with a zero diagonal
    assert w2.loc["s0", "s1"] == pytest.approx(np.linalg.norm(v))
    np.testing.assert_allclose(w2.to_numpy(), w2.to_numpy().T)
    np.testing.assert_array_equal(np.diag(w2), 0.0)
    x, y = a.obsm["X_pca"][:40], a.obsm["X_pca"][80:]
    assert w2.loc["s0", "s2"] ** 2 == pytest.approx(ot.emd2([], [], ot.dist(x, y)))
    assert a.uns["wasserstein"]["distances"].equals(w2)
    pd.testing.assert_frame_equal(a.obs, before)


def test_subsampling_and_embedding_agreement():
    rng = np.random.default_rng(1)
    shifts = [np.array([s, 0, 0]) for s in (0.0, 1.0, 3.0, 7.0)]
    a = _cells(rng, shifts, n=300)
    w2 = gde.tl.wasserstein_distances(
        a, set_key="set", n_cells=100, sets=["s3", "s0"], key_added=None
    )
    assert list(w2.index) == ["s3", "s0"] and "wasserstein" not in a.uns
    assert w2.loc["s0", "s3"] == pytest.approx(7.0, rel=0.15)  # plug-in bias is small here
    # an embedding at the set means follows W2 exactly in rank
    full = gde.tl.wasserstein_distances(a, set_key="set", n_cells=150)
    means = pd.DataFrame([s for s in shifts], index=["s0", "s1", "s2", "s3"])
    assert gde.metrics.distance_spearman(means, full, min_pairs=6) == pytest.approx(1.0)


def test_bad_input():
    a = _cells(np.random.default_rng(2), [0, 1])
    with pytest.raises(KeyError, match=r"sc\.pp\.pca"):
        gde.tl.wasserstein_distances(a, set_key="set", use_rep="X_umap")
    with pytest.raises(KeyError, match="not found"):
        gde.tl.wasserstein_distances(a, set_key="set", sets=["s0", "nope"])
    with pytest.raises(ValueError, match="n_cells"):
        gde.tl.wasserstein_distances(a, set_key="set", n_cells=0)
    a.obsm["X_pca"][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gde.tl.wasserstein_distances(a, set_key="set")
