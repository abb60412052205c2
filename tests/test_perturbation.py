import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scvi
from scipy import sparse

import gde
from conftest import TRAIN_KW


@pytest.fixture(scope="module")
def screen():
    return gde.datasets.simulate_perturbations(
        n_genes=200,
        n_perturbed=12,
        n_combinations=12,
        n_cells_per_perturbation=40,
        n_control_cells=120,
        seed=0,
    )


@pytest.fixture(scope="module")
def screen_model(screen):
    scvi.settings.seed = 0
    train = screen[screen.obs["split"] == "train"].copy()
    gde.GDEModel.setup_anndata(train, set_key="perturbation")
    model = gde.GDEModel(train, n_latent=8, n_hidden=32, n_set_hidden=32)
    model.train(**TRAIN_KW)
    return model, train


def test_simulated_screen_layout_and_ground_truth(screen):
    info = screen.uns["perturbation_simulation"]
    obs = screen.obs
    assert set(obs["kind"]) == {"control", "single", "additive", "non-additive"}
    held = obs.loc[obs["split"] == "held_out", "kind"]
    assert {"single", "additive", "non-additive"} <= set(held)
    assert list(info["features"].index) == sorted(
        {p for p in obs["perturbation"].astype(str) if "+" not in p} - {"control"},
        key=list(info["features"].index).index,
    )
    delta = info["true_delta"]
    kinds = obs.groupby("perturbation", observed=True)["kind"].first()
    # additive pairs add in log space; pairs that share a program do not
    errors = {"additive": [], "non-additive": []}
    for label in delta.index:
        if "+" not in label:
            continue
        a, b = label.split("+")
        summed = delta.loc[a] + delta.loc[b]
        errors[kinds[label]].append(np.abs(delta.loc[label] - summed).sum())
    assert np.mean(errors["non-additive"]) > 2 * np.mean(errors["additive"])


def test_design_sums_parts_and_names_missing_rows():
    feats = pd.DataFrame([[1.0, 0.0], [0.0, 2.0]], index=["A", "B"], columns=["x", "y"])
    design = gde.tl.perturbation_design(["ctrl", "A", "A+B"], control="ctrl", features=feats)
    np.testing.assert_allclose(design.to_numpy(), [[0, 0], [1, 0], [1, 2]])
    with pytest.raises(KeyError, match="no row in the feature table: C"):
        gde.tl.perturbation_design(["A+C"], control="ctrl", features=feats)


def test_metrics_perfect_and_no_change():
    rng = np.random.default_rng(0)
    ctrl = rng.random(50)
    true = ctrl + rng.normal(0, 1, 50)
    perfect = gde.metrics.perturbation_scores(true, true, ctrl)
    assert perfect["pearson delta"] == pytest.approx(1.0)
    assert perfect["mse"] == 0.0 and perfect["direction, top DEGs"] == 1.0
    none = gde.metrics.perturbation_scores(ctrl, true, ctrl)
    assert none["pearson delta"] == 0.0 and none["r2 delta"] == 0.0
    flipped = gde.metrics.perturbation_scores(2 * ctrl - true, true, ctrl)
    assert flipped["direction, top DEGs"] == 0.0


def test_baselines_on_the_simulated_screen(screen):
    train = screen[screen.obs["split"] == "train"]
    held = screen[screen.obs["split"] == "held_out"]
    combos = [
        p
        for p in held.obs["perturbation"].unique()
        if "+" in p and all(q in set(train.obs["perturbation"]) for q in p.split("+"))
    ]
    assert combos, "the simulator holds out pairs of two seen genes"
    base = gde.tl.perturbation_baselines(
        train, perturbation_key="perturbation", control="control", perturbations=combos
    )
    means = gde.tl.perturbation_means(screen, group_key="perturbation")
    ctrl = means.loc["control"].to_numpy()
    np.testing.assert_allclose(base["no change"].to_numpy(), np.tile(ctrl, (len(combos), 1)))
    scores = {k: gde.metrics.perturbation_score_table(v, means, ctrl) for k, v in base.items()}
    top = {k: v["pearson delta, top DEGs"].mean() for k, v in scores.items()}
    assert top["additive"] > 0.5 > top["no change"]


def test_predicted_embeddings_generate_cells(screen, screen_model):
    model, _ = screen_model
    info = screen.uns["perturbation_simulation"]
    held = [p for p in screen.obs.loc[screen.obs["split"] == "held_out", "perturbation"].unique()]
    emb = gde.tl.predict_perturbation_embeddings(
        model,
        perturbation_key="perturbation",
        control="control",
        perturbations=held,
        features=info["features"],
    )
    assert list(emb.index) == held and emb.shape[1] == 8
    assert np.isfinite(emb.to_numpy()).all()
    cells = model.sample(embeddings=emb.iloc[:2], n_cells=10, seed=0)
    assert cells.n_obs == 20 and set(cells.obs["perturbation"]) == set(held[:2])
    # with one-hot features a gene never seen falls back to the average shift
    onehot = gde.tl.predict_perturbation_embeddings(
        model,
        perturbation_key="perturbation",
        control="control",
        perturbations=["G9999", "G9998"],
    )
    np.testing.assert_allclose(onehot.iloc[0], onehot.iloc[1])


def test_prediction_errors(screen_model):
    model, train = screen_model
    feats = train.uns.get("perturbation_simulation", {}).get("features")
    with pytest.raises(ValueError, match="No control set"):
        gde.tl.predict_perturbation_embeddings(
            model, perturbation_key="perturbation", control="ctrl", perturbations=["x"]
        )
    with pytest.raises(KeyError, match="no row in the feature table"):
        gde.tl.predict_perturbation_embeddings(
            model,
            perturbation_key="perturbation",
            control="control",
            perturbations=["NOT_A_GENE"],
            features=feats,
        )
    with pytest.raises(ValueError, match="several perturbations"):
        gde.tl.predict_perturbation_embeddings(
            model, perturbation_key="state", control="control", perturbations=["x"]
        )


def _write_screen(path, labels):
    x = sparse.csr_matrix(
        np.random.default_rng(0).poisson(1.0, (len(labels), 5)), dtype=np.float32
    )
    ad.AnnData(
        x, obs=pd.DataFrame({"guide": labels}, index=[f"c{i}" for i in range(len(labels))])
    ).write_h5ad(path)


def test_read_screen_and_its_errors(tmp_path):
    path = tmp_path / "screen.h5ad"
    _write_screen(path, ["ctrl", "KLF1", "CEBPE", "KLF1+CEBPE", "HLA-A"])
    adata = gde.datasets.read_perturbation_screen(path, perturbation_key="guide", control="ctrl")
    table = adata.uns["perturbation_screen"]["perturbations"]
    assert table.loc["KLF1+CEBPE", "n_perturbed"] == 2 and table.loc["ctrl", "n_perturbed"] == 0
    with pytest.raises(ValueError, match="split a gene name"):
        gde.datasets.read_perturbation_screen(
            path, perturbation_key="guide", control="ctrl", separator="-"
        )
    with pytest.raises(ValueError, match="control label 'control'"):
        gde.datasets.read_perturbation_screen(path, perturbation_key="guide")
    with pytest.raises(KeyError, match="perturbation_key"):
        gde.datasets.read_perturbation_screen(path, control="ctrl")
    _write_screen(path, ["ctrl", "KLF1", None])
    with pytest.raises(ValueError, match="without a label"):
        gde.datasets.read_perturbation_screen(path, perturbation_key="guide", control="ctrl")


def test_make_sets_joins_splits_and_drops():
    obs = pd.DataFrame(
        {"clone": ["a"] * 7 + ["b"] * 2 + ["a"], "day": [2] * 7 + [2, 2] + [4]},
        index=[f"c{i}" for i in range(10)],
    )
    adata = ad.AnnData(np.zeros((10, 2), np.float32), obs=obs)
    with pytest.warns(UserWarning, match="fewer than 2 cells"):
        gde.pp.make_sets(adata, ["clone", "day"], min_cells=2, max_cells=4)
    sets = adata.obs["set"]
    assert sets.isna().sum() == 1  # clone a at day 4: one cell
    assert set(sets.dropna()) == {"a | 2 | chunk 1", "a | 2 | chunk 2", "b | 2"}
    assert sets.value_counts().max() <= 4
    adata.obs.loc["c0", "clone"] = None
    with pytest.raises(ValueError, match="missing values"):
        gde.pp.make_sets(adata, ["clone", "day"])


def test_ridge_leave_one_out_is_exact_and_shrinks_a_useless_block():
    from gde.tl._ridge import _solve, fit_blocks

    rng = np.random.default_rng(0)
    useful, noise = rng.normal(size=(40, 3)), rng.normal(size=(40, 5))
    y = useful @ rng.normal(size=(3, 2)) + 0.3 * rng.normal(size=(40, 2))
    x = np.hstack([useful, noise])
    penalty = np.r_[np.full(3, 0.5), np.full(5, 3.0)]
    _, _, loo = _solve(x, y, penalty)
    brute = 0.0
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        b, w, _ = _solve(x[keep], y[keep], penalty)
        brute += ((y[i] - b - x[i] @ w) ** 2).sum()
    assert loo == pytest.approx(brute / ((y - y.mean(0)) ** 2).sum(), rel=1e-8)
    _, _, choice = fit_blocks([useful, noise], y)
    low, high = choice["penalties"]
    assert high > 10 * low
    assert fit_blocks([useful, noise], y, alpha=2.0)[2]["penalties"] == [2.0, 2.0]
