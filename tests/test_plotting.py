"""Set-level tools (distances, dendrogram, generated vs real) and their plots."""

import matplotlib

matplotlib.use("Agg")

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from scipy import sparse
from scipy.spatial.distance import cdist

import gde


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def sets():
    """A set AnnData: 12 sets in two tight clusters, interleaved in obs order."""
    rng = np.random.default_rng(0)
    n = 12
    cluster = np.arange(n) % 2
    z = rng.normal(scale=0.1, size=(n, 4))
    z[:, 0] += 10.0 * cluster
    names = [f"s{i}" for i in range(n)]
    obs = pd.DataFrame(
        {
            "n_cells": rng.integers(20, 60, n),
            "donor": pd.Categorical([f"d{i % 3}" for i in range(n)]),
            "age": np.linspace(20.0, 75.0, n),
            "cluster": pd.Categorical(np.where(cluster == 1, "B", "A")),
        },
        index=names,
    )
    out = ad.AnnData(obs=obs)
    out.obsm["X_gde"] = z
    out.obsp["X_gde_distances"] = cdist(z, z)
    out.uns["X_gde"] = {"params": {"set_key": "sample", "n_latent": 4}}
    return out


def _log_norm(x):
    x = np.asarray(x, dtype=np.float64)
    return np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1.0) * 1e4)


@pytest.fixture
def real():
    """Real cells: integer counts for 3 sets of 20 cells over 15 genes."""
    rng = np.random.default_rng(1)
    n_genes = 15
    rates = {
        "a": rng.gamma(2.0, 2.0, n_genes),
        "b": rng.gamma(2.0, 2.0, n_genes),
        "c": rng.gamma(2.0, 2.0, n_genes),
    }
    labels = np.repeat(list(rates), 20)
    x = np.stack([rng.poisson(rates[s]) for s in labels]).astype(np.float32)
    obs = pd.DataFrame({"sample": pd.Categorical(labels)}, index=[f"c{i}" for i in range(60)])
    var = pd.DataFrame(index=[f"g{i}" for i in range(n_genes)])
    return ad.AnnData(sparse.csr_matrix(x), obs=obs, var=var)


@pytest.fixture
def path(real):
    """What `model.interpolate('a', 'c', n_points=4, n_cells=10)` returns."""
    rng = np.random.default_rng(2)
    n_steps, n_cells = 4, 10
    weights = np.linspace(0.0, 1.0, n_steps)
    x = real.X.toarray()
    mean_a = x[real.obs["sample"] == "a"].mean(0)
    mean_c = x[real.obs["sample"] == "c"].mean(0)
    rates = [(1 - w) * mean_a + w * mean_c for w in weights]
    counts = np.concatenate([rng.poisson(r, size=(n_cells, real.n_vars)) for r in rates])
    labels = [f"a->c point {k}" for k in range(n_steps)]
    obs = pd.DataFrame(
        {
            "sample": pd.Categorical(np.repeat(labels, n_cells), categories=labels),
            "point": np.repeat(np.arange(n_steps), n_cells),
            "weight": np.repeat(weights, n_cells),
        },
        index=[f"gen_{i}" for i in range(n_steps * n_cells)],
    )
    out = ad.AnnData(sparse.csr_matrix(counts.astype(np.float32)), obs=obs, var=real.var.copy())
    out.uns["interpolation"] = {"set_a": "a", "set_b": "c", "set_key": "sample"}
    return out


def _numpy_pca(x):
    """Mean and sign-fixed loadings of the top two components of the rows of x."""
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    v = vt[:2].T
    return mean, v * np.sign(v[np.abs(v).argmax(0), [0, 1]])


# ------------------------------------------------------------------ distances
def test_set_distances_equal_brute_force(sets):
    z = sets.obsm["X_gde"]
    del sets.obsp["X_gde_distances"]
    assert gde.tl.set_distances(sets) is None
    brute = np.array([[np.sqrt(((a - b) ** 2).sum()) for b in z] for a in z])
    np.testing.assert_allclose(sets.obsp["X_gde_distances"], brute, atol=1e-12)

    out = gde.tl.set_distances(sets, metric="cosine", key_added="cos", copy=True)
    assert "cos" not in sets.obsp
    cos = 1 - (z @ z.T) / np.outer(np.linalg.norm(z, axis=1), np.linalg.norm(z, axis=1))
    np.testing.assert_allclose(out.obsp["cos"], cos, atol=1e-12)


def test_set_distances_missing_rep(sets):
    with pytest.raises(KeyError, match=r"obsm\['X_other'\].*get_set_adata"):
        gde.tl.set_distances(sets, use_rep="X_other")


# ----------------------------------------------------------------- dendrogram
def test_set_dendrogram_groups_tight_clusters(sets):
    gde.tl.set_dendrogram(sets)
    entry = sets.uns["dendrogram_X_gde_distances"]
    order = entry["order"]
    assert sorted(order) == sorted(sets.obs_names)
    assert entry["method"] == "average"
    assert entry["linkage"].shape == (sets.n_obs - 1, 4)
    # the two clusters (interleaved in obs order) come out contiguous
    clusters = sets.obs.loc[order, "cluster"].to_numpy()
    assert len(set(clusters[:6])) == 1
    assert len(set(clusters[6:])) == 1

    copy = gde.tl.set_dendrogram(sets, method="complete", key_added="dendro", copy=True)
    assert "dendro" in copy.uns and "dendro" not in sets.uns
    assert copy.uns["dendro"]["method"] == "complete"


def test_set_dendrogram_errors(sets):
    with pytest.raises(KeyError, match=r"obsp\['nope'\].*gde\.tl\.set_distances"):
        gde.tl.set_dendrogram(sets, distances_key="nope")
    with pytest.raises(ValueError, match="method"):
        gde.tl.set_dendrogram(sets, method="nearest")


# -------------------------------------------------------------------- heatmap
def test_distance_heatmap_shows_reordered_matrix(sets):
    d = sets.obsp["X_gde_distances"]
    ax = gde.pl.distance_heatmap(sets, show=False)
    assert isinstance(ax, Axes)
    # computed on the fly, not written
    assert "dendrogram_X_gde_distances" not in sets.uns
    labels = [t.get_text() for t in ax.get_yticklabels()]
    pos = [sets.obs_names.get_loc(name) for name in labels]
    assert sorted(pos) == list(range(sets.n_obs))
    np.testing.assert_allclose(ax.images[0].get_array(), d[np.ix_(pos, pos)])
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    assert any(other.get_ylabel() == "latent distance" for other in ax.figure.axes)


def test_distance_heatmap_uses_stored_order(sets):
    rng = np.random.default_rng(3)
    perm = rng.permutation(sets.n_obs)
    sets.uns["custom"] = {"order": list(sets.obs_names[perm])}
    ax = gde.pl.distance_heatmap(sets, dendrogram_key="custom", show=False)
    d = sets.obsp["X_gde_distances"]
    np.testing.assert_allclose(ax.images[0].get_array(), d[np.ix_(perm, perm)])
    assert [t.get_text() for t in ax.get_yticklabels()] == list(sets.obs_names[perm])

    gde.tl.set_dendrogram(sets)
    order = sets.uns["dendrogram_X_gde_distances"]["order"]
    ax = gde.pl.distance_heatmap(sets, show=False)
    assert [t.get_text() for t in ax.get_yticklabels()] == order


def test_distance_heatmap_colour_strips(sets):
    fig, ax = plt.subplots()
    out = gde.pl.distance_heatmap(sets, color=["donor", "age"], ax=ax, show=False)
    assert out is ax
    strips = [other for other in fig.axes if other.get_ylabel() in ("donor", "age")]
    assert len(strips) == 2
    labels = [t.get_text() for t in ax.get_yticklabels()]
    donor_strip = next(s for s in strips if s.get_ylabel() == "donor")
    rgba = donor_strip.images[0].get_array()[0]
    donors = sets.obs.loc[labels, "donor"].to_numpy()
    for name in np.unique(donors):  # one colour per donor, different between donors
        colours = {tuple(c) for c in rgba[donors == name]}
        assert len(colours) == 1
    assert len({tuple(c) for c in rgba}) == 3
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"donor", "d0", "d1", "d2", "age"} <= set(legend)


def test_distance_heatmap_errors(sets):
    with pytest.raises(KeyError, match="set_distances"):
        gde.pl.distance_heatmap(sets, distances_key="missing", show=False)
    with pytest.raises(KeyError, match="set_dendrogram"):
        gde.pl.distance_heatmap(sets, dendrogram_key="missing", show=False)
    with pytest.raises(KeyError, match="'tissue'"):
        gde.pl.distance_heatmap(sets, color="tissue", show=False)
    sets.uns["stale"] = {"order": ["s0", "s1"]}
    with pytest.raises(ValueError, match="set_dendrogram"):
        gde.pl.distance_heatmap(sets, dendrogram_key="stale", show=False)


# ---------------------------------------------------------- set embedding plot
def test_set_embedding_accepts_set_adata(sets):
    ax = gde.pl.set_embedding(sets, color="donor", basis="raw", show=False)
    assert isinstance(ax, Axes)
    assert len(ax.collections) == 3  # one scatter per donor
    z = sets.obsm["X_gde"]
    for coll, donor in zip(ax.collections, ["d0", "d1", "d2"], strict=True):
        rows = (sets.obs["donor"] == donor).to_numpy()
        np.testing.assert_allclose(coll.get_offsets(), z[rows][:, :2])
    ax = gde.pl.set_embedding(sets, color="age", show=False)
    assert len(ax.figure.axes) == 2  # colorbar
    series = pd.Series(np.arange(sets.n_obs), index=sets.obs_names[::-1])
    ax = gde.pl.set_embedding(sets, color=series, basis="raw", show=False)
    np.testing.assert_allclose(ax.collections[0].get_array(), np.arange(sets.n_obs)[::-1])
    with pytest.raises(KeyError, match="'tissue'"):
        gde.pl.set_embedding(sets, color="tissue", show=False)


# ----------------------------------------------------------- generated vs real
def _generated_from(real, sets, n_cells=8, seed=4):
    rng = np.random.default_rng(seed)
    x = real.X.toarray()
    blocks = [
        rng.poisson(x[real.obs["sample"] == s].mean(0), (n_cells, real.n_vars)) for s in sets
    ]
    obs = pd.DataFrame(
        {"set": pd.Categorical(np.repeat(sets, n_cells), categories=sets)},
        index=[f"gen_{i}" for i in range(n_cells * len(sets))],
    )
    return ad.AnnData(
        sparse.csr_matrix(np.concatenate(blocks).astype(np.float32)), obs=obs, var=real.var.copy()
    )


def test_generated_vs_real_matches_numpy(real):
    gen = _generated_from(real, ["c", "a"])
    table = gde.tl.generated_vs_real(real, gen, set_key="sample")
    assert list(table.columns) == [
        "set",
        "gene",
        "mean_real",
        "mean_generated",
        "var_real",
        "var_generated",
    ]
    assert list(table["set"].cat.categories) == ["c", "a"]  # sets present in both
    assert len(table) == 2 * real.n_vars
    logr, logg = _log_norm(real.X.toarray()), _log_norm(gen.X.toarray())
    for name in ["a", "c"]:
        rows = table[table["set"] == name].set_index("gene")
        r = logr[(real.obs["sample"] == name).to_numpy()]
        g = logg[(gen.obs["set"] == name).to_numpy()]
        genes = list(real.var_names)
        np.testing.assert_allclose(rows.loc[genes, "mean_real"], r.mean(0), atol=1e-10)
        np.testing.assert_allclose(rows.loc[genes, "var_real"], r.var(0), atol=1e-10)
        np.testing.assert_allclose(rows.loc[genes, "mean_generated"], g.mean(0), atol=1e-10)
        np.testing.assert_allclose(rows.loc[genes, "var_generated"], g.var(0), atol=1e-10)


def test_generated_vs_real_gene_order_and_continuous(real):
    gen = _generated_from(real, ["b"])[:, ::-1].copy()  # genes in reverse order
    table = gde.tl.generated_vs_real(real, gen, set_key="sample", sets=["b"])
    assert list(table["gene"]) == list(gen.var_names)
    expected = _log_norm(real.X.toarray()[(real.obs["sample"] == "b").to_numpy()])[:, ::-1]
    np.testing.assert_allclose(table["mean_real"], expected.mean(0), atol=1e-10)

    # continuous features (negative values) are compared as they are
    rng = np.random.default_rng(5)
    cont = real.copy()
    cont.X = rng.normal(size=real.shape)
    gcont = gen.copy()
    gcont.X = rng.normal(size=gen.shape)
    table = gde.tl.generated_vs_real(cont, gcont, set_key="sample")
    b = (cont.obs["sample"] == "b").to_numpy()
    np.testing.assert_allclose(table["mean_real"], cont.X[b][:, ::-1].mean(0))
    np.testing.assert_allclose(table["var_generated"], gcont.X.var(0))


def test_generated_vs_real_summary_and_errors(real):
    # generated cells identical to the real ones: r = 1 for means and variances
    same = real.copy()
    same.obs = pd.DataFrame({"set": real.obs["sample"].to_numpy()}, index=real.obs_names)
    table = gde.tl.generated_vs_real(real, same, set_key="sample")
    summary = gde.tl.generated_vs_real_summary(table)
    assert list(summary.index) == ["a", "b", "c"]
    np.testing.assert_allclose(summary[["r_mean", "r_var"]].to_numpy(), 1.0)

    unlabelled = real.copy()
    unlabelled.obs = unlabelled.obs.drop(columns=["sample"])
    with pytest.raises(KeyError, match=r"obs\['sample'\] is missing.*model\.sample"):
        gde.tl.generated_vs_real(real, unlabelled, set_key="sample")
    with pytest.raises(KeyError, match=r"\['z'\]"):
        gde.tl.generated_vs_real(real, same, set_key="sample", sets=["z"])
    with pytest.raises(KeyError, match="set_key 'donor'"):
        gde.tl.generated_vs_real(real, same, set_key="donor")


def test_generated_vs_real_plot(real):
    gen = _generated_from(real, ["a", "b"])
    table = gde.tl.generated_vs_real(real, gen, set_key="sample", sets=["a"])
    axes = gde.pl.generated_vs_real(real, gen, set_key="sample", set_name="a", show=False)
    assert len(axes) == 2 and all(isinstance(a, Axes) for a in axes)
    np.testing.assert_allclose(
        axes[0].collections[0].get_offsets(), table[["mean_real", "mean_generated"]]
    )
    np.testing.assert_allclose(
        axes[1].collections[0].get_offsets(), table[["var_real", "var_generated"]]
    )
    assert "r = " in axes[0].get_title()

    _, own = plt.subplots(1, 2)
    pooled = gde.pl.generated_vs_real(real, gen, set_key="sample", axes=own, show=False)
    assert pooled[0] is own[0] and pooled[1] is own[1]
    assert len(own[0].collections[0].get_offsets()) == 2 * real.n_vars
    with pytest.raises(ValueError, match="two Axes"):
        gde.pl.generated_vs_real(real, gen, set_key="sample", axes=own[:1], show=False)


# --------------------------------------------------------------- interpolation
def test_interpolation_projects_on_real_pcs(real, path):
    ax = gde.pl.interpolation(real, path, show=False)
    assert isinstance(ax, Axes)
    logr, logg = _log_norm(real.X.toarray()), _log_norm(path.X.toarray())
    mean, v = _numpy_pca(logr)
    background, generated = ax.collections[0], ax.collections[1]
    np.testing.assert_allclose(background.get_offsets(), (logr - mean) @ v, atol=1e-8)
    gen_xy = (logg - mean) @ v
    np.testing.assert_allclose(generated.get_offsets(), gen_xy, atol=1e-8)
    np.testing.assert_allclose(generated.get_array(), path.obs["weight"])
    steps = path.obs["point"].to_numpy()
    step_means = np.stack([gen_xy[steps == k].mean(0) for k in range(4)])
    np.testing.assert_allclose(np.column_stack(ax.lines[0].get_data()), step_means, atol=1e-8)
    assert ax.get_title() == "a → c"


def test_interpolation_real_sets_and_obsm_basis(real, path):
    ax = gde.pl.interpolation(real, path, real_sets=["a", "c"], set_key="sample", show=False)
    keep = real.obs["sample"].isin(["a", "c"]).to_numpy()
    logr, logg = _log_norm(real.X.toarray()), _log_norm(path.X.toarray())
    mean, v = _numpy_pca(logr[keep])
    assert len(ax.collections[0].get_offsets()) == keep.sum()
    np.testing.assert_allclose(ax.collections[1].get_offsets(), (logg - mean) @ v, atol=1e-8)

    # a stored PCA in scanpy's layout gives the same projection as the internal one
    mean, v = _numpy_pca(logr)
    real.obsm["X_pca"] = (logr - mean) @ v
    real.varm["PCs"] = v
    _, own = plt.subplots()
    ax = gde.pl.interpolation(real, path, basis="X_pca", ax=own, show=False)
    assert ax is own
    np.testing.assert_allclose(ax.collections[1].get_offsets(), (logg - mean) @ v, atol=1e-8)


def test_interpolation_continuous_values(real, path):
    rng = np.random.default_rng(6)
    real.X = rng.normal(size=real.shape)
    path.X = rng.normal(size=path.shape)
    ax = gde.pl.interpolation(real, path, color="sample", show=False)
    mean, v = _numpy_pca(real.X)
    projected = np.concatenate([c.get_offsets() for c in ax.collections[1:]])
    np.testing.assert_allclose(projected, (path.X - mean) @ v, atol=1e-8)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["real cells", *path.obs["sample"].cat.categories]


def test_interpolation_errors(real, path):
    generated = path.copy()
    generated.obs = generated.obs[["sample"]]  # what model.sample returns
    with pytest.raises(KeyError, match=r"obs\['point'\].*model.interpolate"):
        gde.pl.interpolation(real, generated, show=False)
    no_weight = path.copy()
    del no_weight.obs["weight"]
    with pytest.raises(KeyError, match=r"obs\['weight'\].*model.interpolate"):
        gde.pl.interpolation(real, no_weight, show=False)
    with pytest.raises(ValueError, match="set_key"):
        gde.pl.interpolation(real, path, real_sets=["a"], show=False)
    with pytest.raises(KeyError, match=r"\['z'\]"):
        gde.pl.interpolation(real, path, real_sets=["z"], set_key="sample", show=False)
    with pytest.raises(KeyError, match=r"sc\.pp\.pca"):
        gde.pl.interpolation(real, path, basis="X_umap", show=False)
    real.obsm["X_pca"] = np.zeros((real.n_obs, 2))
    with pytest.raises(KeyError, match=r"varm\['PCs'\]"):
        gde.pl.interpolation(real, path, basis="X_pca", show=False)


# ------------------------------------------------------------- show and save
def test_show_false_never_shows_and_save_writes(sets, real, path, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: calls.append(1))
    gen = _generated_from(real, ["a"])
    gde.pl.distance_heatmap(sets, color="donor", show=False)
    gde.pl.set_embedding(sets, color="donor", show=False)
    gde.pl.interpolation(real, path, show=False)
    gde.pl.generated_vs_real(real, gen, set_key="sample", show=False)
    assert calls == []
    gde.pl.distance_heatmap(sets, show=True)
    assert calls == [1]
    target = tmp_path / "heatmap.png"
    gde.pl.distance_heatmap(sets, color="donor", save=str(target))
    assert target.stat().st_size > 0
    assert calls == [1]  # saving does not show by default


# -------------------------------------------------------------------- scanpy
def test_scanpy_runs_on_set_adata(sets):
    sc = pytest.importorskip("scanpy")
    sc.pp.neighbors(sets, use_rep="X_gde", n_neighbors=3)
    sc.tl.umap(sets)
    assert sets.obsm["X_umap"].shape == (sets.n_obs, 2)
    ax = sc.pl.umap(sets, color="donor", show=False)
    assert isinstance(ax, Axes)
