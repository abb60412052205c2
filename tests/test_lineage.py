import anndata as ad
import matplotlib
import numpy as np
import pandas as pd
import pytest
import scvi

import gde
from conftest import TRAIN_KW

matplotlib.use("Agg")


def _gaussian_pairs(rho, n, seed):
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], n)
    return z[:, 0], z[:, 1]


@pytest.mark.parametrize("rho", [0.0, 0.6, 0.9])
def test_ksg_recovers_closed_form_of_correlated_gaussians(rho):
    truth = -0.5 * np.log2(1 - rho**2)
    estimates = [
        gde.metrics.ksg_mutual_information(*_gaussian_pairs(rho, 2000, s)) for s in range(4)
    ]
    assert abs(estimates[0] - truth) < 0.05
    assert abs(np.mean(estimates) - truth) < 0.03  # no bias beyond the noise


def test_ksg_pointwise_mean_and_metric():
    x, y = _gaussian_pairs(0.8, 500, 0)
    mi, local = gde.metrics.ksg_mutual_information(x, y, pointwise=True)
    assert local.shape == (500,) and np.isclose(local.mean(), mi)
    euclid = gde.metrics.ksg_mutual_information(np.c_[x, x], np.c_[y, y], metric="euclidean")
    assert euclid > 0.5
    with pytest.raises(ValueError, match="pair up"):
        gde.metrics.ksg_mutual_information(x, y[:-1])
    with pytest.raises(ValueError, match="metric"):
        gde.metrics.ksg_mutual_information(x, y, metric="cosine")


def test_permutation_null_is_calibrated_on_independent_data():
    rng = np.random.default_rng(0)
    p = [
        gde.metrics.mutual_information_test(
            rng.normal(size=(80, 2)), rng.normal(size=(80, 2)), n_permutations=19, seed=i
        )["p_value"]
        for i in range(200)
    ]
    # under independence p is uniform on {1/20, ..., 1}: P(p <= 0.1) = 0.1
    assert 0.04 <= np.mean(np.asarray(p) <= 0.1) <= 0.18
    dep = gde.metrics.mutual_information_test(*_gaussian_pairs(0.7, 200, 1), n_permutations=50)
    assert dep["p_value"] < 0.05


@pytest.fixture(scope="module")
def lineage():
    adata = gde.datasets.simulate_lineage(n_clones=40, n_genes=90, cells_per_clone=12, seed=0)
    gde.pp.make_sets(adata, ["clone", "time"])
    return adata


def test_simulated_lineage_ground_truth(lineage):
    info = lineage.uns["lineage_simulation"]
    probs = info["fate_probabilities"]
    np.testing.assert_allclose(probs.sum(1), 1.0)
    assert list(probs.columns) == ["Neutrophil", "Undifferentiated", "Monocyte", "Baso"]
    obs = lineage.obs
    assert obs.groupby("clone", observed=True)["clone_fate"].nunique().max() == 1
    assert (obs["clone_fate"].astype(str) == probs.idxmax(1).loc[obs["clone"]].to_numpy()).all()
    sizes = obs[obs["time"] == "day 6"].groupby("clone", observed=True).size()
    assert sizes.max() > 3 * sizes.median()  # heavy-tailed, as LARRY's clones
    # clones grow: every clone has at least as many cells later
    per_time = pd.crosstab(obs["clone"], obs["time"])
    assert (per_time["day 6"] >= per_time["day 2"]).all()
    # late cells follow their clone's fate probabilities
    late = obs[obs["time"] == "day 6"]
    share = pd.crosstab(late["clone"], late["fate"], normalize="index")
    big = sizes.index[sizes >= 30]
    err = (share.loc[big, probs.columns] - probs.loc[big]).abs().sum(1).mean()
    assert err < 0.5
    # half the day-2 cells are primed, every day-6 cell; primed cells show the early
    # program of their own fate
    primed = obs.groupby("time", observed=True)["primed"].mean()
    assert 0.4 < primed["day 2"] < 0.6 and primed["day 6"] == 1.0
    day2 = (obs["time"] == "day 2").to_numpy()
    x = np.log1p(lineage.X.toarray())
    for fate, genes in info["programs"]["early"].items():
        cols = lineage.var_names.get_indexer(genes)
        own = day2 & (obs["fate"] == fate).to_numpy()
        on = x[own & obs["primed"].to_numpy()][:, cols].mean()
        off = x[own & ~obs["primed"].to_numpy()][:, cols].mean()
        assert on > off + 0.2
    larry = gde.datasets.larry_clone_fates()
    assert larry.shape[1] == 12 and len(larry) > 500


def test_clone_information_on_pseudobulk_and_model(lineage):
    pb = lineage.copy()
    gde.tl.pseudobulk_embedding(pb, set_key="set", n_comps=6, key_added="X_pb")
    gde.tl.clone_information(
        pb,
        early="day 2",
        late="day 6",
        use_rep="X_pb",
        fate_key="clone_fate",
        n_permutations=20,
    )
    res = pb.uns["clone_information"]
    assert res["n_clones"] == 40 and len(res["null_bits"]) == 20
    assert np.isclose(res["pointwise"].mean(), res["mi_bits"])
    assert 0 <= res["fate_auc"] <= 1 and 0 <= res["fate_accuracy"] <= 1
    assert pb.obs["clone_information_pointwise"].notna().all()

    scvi.settings.seed = 0
    train = lineage[lineage.obs["split"] == "train"].copy()
    gde.GDEModel.setup_anndata(train, set_key="set")
    model = gde.GDEModel(train, n_latent=8, n_hidden=32, n_set_hidden=32)
    model.train(**TRAIN_KW)
    sets = model.get_set_adata(lineage)
    before = sets.obsm["X_gde"].copy()
    gde.tl.clone_information(
        sets, early="day 2", late="day 4", n_comps=4, n_permutations=10, key_added="ci"
    )
    assert sets.uns["ci"]["params"]["n_comps"] == 4
    np.testing.assert_array_equal(sets.obsm["X_gde"], before)
    ax = gde.pl.clone_information(sets, key="ci", show=False)
    assert isinstance(ax, matplotlib.axes.Axes)
    assert len(ax.collections[0].get_offsets()) == 40


def test_clone_information_averages_chunks(lineage):
    chunked = lineage.copy()
    gde.pp.make_sets(chunked, ["clone", "time"], max_cells=10)
    gde.tl.pseudobulk_embedding(chunked, set_key="set", n_comps=6, key_added="X_pb")
    gde.tl.clone_information(
        chunked, early="day 2", late="day 6", use_rep="X_pb", n_permutations=0
    )
    assert chunked.uns["clone_information"]["n_clones"] == 40
    assert np.isnan(chunked.uns["clone_information"]["p_value"])


def test_clone_information_bad_input(lineage):
    pb = lineage.copy()
    gde.tl.pseudobulk_embedding(pb, set_key="set", n_comps=6, key_added="X_pb")
    kw = {"use_rep": "X_pb", "n_permutations": 0}
    with pytest.raises(ValueError, match=r"not a time point.*day 2"):
        gde.tl.clone_information(pb, early="day 1", late="day 6", **kw)
    with pytest.raises(KeyError, match="No set embedding"):
        gde.tl.clone_information(pb, early="day 2", late="day 6", use_rep="X_missing")
    with pytest.raises(KeyError, match="set-level"):
        gde.tl.clone_information(pb, early="day 2", late="day 6", fate_key="fate", **kw)
    # clones sampled early and late are disjoint
    disjoint = lineage.copy()
    early = (disjoint.obs["time"] == "day 2").to_numpy()
    disjoint.obs["clone"] = np.where(early, "e_", "l_") + disjoint.obs["clone"].astype(str)
    gde.pp.make_sets(disjoint, ["clone", "time"])
    gde.tl.pseudobulk_embedding(disjoint, set_key="set", n_comps=6, key_added="X_pb")
    with pytest.raises(ValueError, match="No clone has sets at both"):
        gde.tl.clone_information(disjoint, early="day 2", late="day 6", **kw)
    missing = lineage.copy()
    missing.obs["clone"] = missing.obs["clone"].astype(object)
    missing.obs.iloc[0, missing.obs.columns.get_loc("clone")] = np.nan
    with pytest.raises(ValueError, match="missing values"):
        gde.pp.make_sets(missing, ["clone", "time"])


def test_read_lineage_checks_and_drops(tmp_path, lineage):
    small = lineage[:300].copy()
    small.obs["clone"] = small.obs["clone"].astype(object)
    small.obs.iloc[:5, small.obs.columns.get_loc("clone")] = None
    path = tmp_path / "lineage.h5ad"
    small.write_h5ad(path)
    with pytest.raises(ValueError, match="drop_unlabelled=True"):
        gde.datasets.read_lineage(path)
    with pytest.raises(KeyError, match="barcode"):
        gde.datasets.read_lineage(path, clone_key="barcode")
    read = gde.datasets.read_lineage(path, drop_unlabelled=True)
    assert read.n_obs == 295
    info = read.uns["lineage"]
    assert info["time_points"][0] == "day 2"
    assert int(info["clones"].to_numpy().sum()) == 295
    with pytest.raises(FileNotFoundError):
        gde.datasets.read_lineage(tmp_path / "absent.h5ad")
    assert isinstance(read, ad.AnnData)
