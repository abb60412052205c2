"""Generation: sample() and interpolate() for CVAE and DDPM decoders, counts and continuous."""

import numpy as np
import pandas as pd
import pytest
import scvi
import torch
from scipy import sparse

import gde
from conftest import TRAIN_KW, small_sets

SMALL = {"n_latent": 8, "n_hidden": 32, "n_set_hidden": 32}
SMALL_DDPM = {**SMALL, "n_denoiser_hidden": 32, "n_denoiser_blocks": 1, "n_diffusion_steps": 50}


@pytest.fixture(scope="module")
def count_models():
    """CVAE and latent-diffusion models trained for two epochs on the same count data."""
    scvi.settings.seed = 0
    models = {}
    for decoder, kw in (("cvae", SMALL), ("ddpm", SMALL_DDPM)):
        adata = small_sets()
        gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
        model = gde.GDEModel(adata, decoder=decoder, **kw)
        model.train(**TRAIN_KW)
        models[decoder] = model
    return models


def _separated_sets(n_sets=6, n_cells=120, seed=0):
    """Continuous sets whose means lie far apart (in ``obsm['X_pca']`` and ``X``)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (n_sets, 3))
    x = np.concatenate([c + 0.3 * rng.standard_normal((n_cells, 3)) for c in centres])
    names = [f"s{i}" for i in range(n_sets)]
    adata = gde.datasets.gaussian_sets(n_sets=n_sets, n_samples_per_set=n_cells, seed=seed)
    adata.obs["set"] = pd.Categorical(np.repeat(names, n_cells), categories=names)
    adata.obsm["X_pca"] = x.astype(np.float32)
    return adata, centres


@pytest.fixture(scope="module")
def continuous_models():
    """CVAE (normal) and DDPM models on features in obsm['X_pca']."""
    scvi.settings.seed = 0
    models = {}
    for decoder, kw in (("cvae", SMALL), ("ddpm", SMALL_DDPM)):
        adata, _ = _separated_sets()
        gde.GDEModel.setup_anndata(adata, set_key="set", obsm_key="X_pca")
        model = gde.GDEModel(adata, decoder=decoder, **kw)
        model.train(**{**TRAIN_KW, "n_sets_per_batch": 6, "set_size": 32}, early_stopping=False)
        models[decoder] = model
    return models


@pytest.mark.parametrize("decoder", ["cvae", "ddpm"])
def test_sampled_counts_are_integers_with_set_labels(count_models, decoder):
    model = count_models[decoder]
    out = model.sample(sets=["set_1", "set_4"], n_cells=25, seed=0)
    assert out.shape == (50, model.adata.n_vars)
    assert sparse.issparse(out.X)
    x = out.X.toarray()
    assert (x >= 0).all() and np.array_equal(x, np.round(x))
    assert x.sum() > 0
    assert list(out.obs["set"].cat.categories) == ["set_1", "set_4"]
    assert (out.obs["set"] == "set_1").sum() == 25
    assert list(out.var_names) == list(model.adata.var_names)
    assert set(out.obs["batch"]) <= set(model.adata.obs["batch"])


@pytest.mark.parametrize("decoder", ["cvae", "ddpm"])
def test_seed_reproduces_and_leaves_global_state(count_models, decoder):
    model = count_models[decoder]
    kw = {"sets": ["set_2"], "n_cells": 30}
    if decoder == "ddpm":
        kw["n_steps"] = 10
    before = np.random.get_state()[1].copy(), torch.random.get_rng_state()  # noqa: NPY002
    a = model.sample(seed=3, **kw).X.toarray()
    b = model.sample(seed=3, **kw).X.toarray()
    c = model.sample(seed=4, **kw).X.toarray()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.array_equal(np.random.get_state()[1], before[0])  # noqa: NPY002
    assert torch.equal(torch.random.get_rng_state(), before[1])


def test_sample_all_sets_by_default_and_batch_choice(count_models):
    model = count_models["cvae"]
    out = model.sample(n_cells=3, batch="batch_1", seed=0)
    assert out.n_obs == 3 * model.adata.obs["set"].nunique()
    assert (out.obs["batch"] == "batch_1").all()
    with pytest.raises(KeyError, match="Unknown batch"):
        model.sample(sets=["set_0"], batch="nope")


def test_sample_from_arbitrary_embeddings(count_models):
    model = count_models["cvae"]
    emb = model.get_distribution_embeddings(key_added=None)
    midpoint = (emb.loc[["set_0"]].to_numpy() + emb.loc[["set_1"]].to_numpy()) / 2
    frame = pd.DataFrame(midpoint, index=["middle"])
    out = model.sample(embeddings=frame, n_cells=10, seed=0)
    assert list(out.obs["set"].unique()) == ["middle"]
    out = model.sample(embeddings=np.zeros((2, 8)), n_cells=5, seed=0)
    assert list(out.obs["set"].cat.categories) == ["embedding_0", "embedding_1"]


def test_embedding_errors(count_models):
    model = count_models["cvae"]
    with pytest.raises(ValueError, match="shape"):
        model.sample(embeddings=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        model.sample(embeddings=np.full((1, 8), np.nan))
    with pytest.raises(ValueError, match="either"):
        model.sample(sets=["set_0"], embeddings=np.zeros((1, 8)))
    with pytest.raises(ValueError, match="n_cells"):
        model.sample(sets=["set_0"], n_cells=0)
    with pytest.raises(KeyError, match="not found"):
        model.sample(sets=["no_such_set"])
    with pytest.raises(ValueError, match="decoder='ddpm'"):
        model.sample(sets=["set_0"], n_steps=10)


@pytest.mark.parametrize("decoder", ["cvae", "ddpm"])
def test_interpolate_labels_steps_and_weights(count_models, decoder):
    model = count_models[decoder]
    kw = {"n_steps": 5} if decoder == "ddpm" else {}
    out = model.interpolate("set_0", "set_3", n_points=4, n_cells=6, seed=0, **kw)
    assert out.n_obs == 24
    np.testing.assert_array_equal(out.obs["point"].to_numpy(), np.repeat(np.arange(4), 6))
    np.testing.assert_allclose(out.obs["weight"].unique(), [0, 1 / 3, 2 / 3, 1])
    assert out.obs["set"].nunique() == 4
    with pytest.raises(ValueError, match="n_points"):
        model.interpolate("set_0", "set_3", n_points=1)


@pytest.mark.parametrize("decoder", ["cvae", "ddpm"])
def test_continuous_path_trains_and_generates_features(continuous_models, decoder):
    model = continuous_models[decoder]
    assert model.module.data_kind == "continuous"
    assert np.isfinite(model.history["elbo_train"].to_numpy(dtype=float)).all()
    kw = {"n_steps": 10} if decoder == "ddpm" else {}
    out = model.sample(sets=["s0", "s2"], n_cells=40, seed=0, **kw)
    assert out.shape == (80, 3)
    assert not sparse.issparse(out.X)
    assert np.isfinite(out.X).all()
    assert list(out.var_names) == ["X_pca_0", "X_pca_1", "X_pca_2"]
    # a set's embedding vector decodes exactly like the set (no library size to draw)
    emb = model.get_distribution_embeddings(key_added=None)
    via_vector = model.sample(embeddings=emb.loc[["s2"]], n_cells=40, seed=5, **kw)
    via_set = model.sample(sets=["s2"], n_cells=40, seed=5, **kw)
    np.testing.assert_allclose(via_vector.X, via_set.X, rtol=1e-5, atol=1e-5)


def test_interpolation_endpoints_decode_like_the_sets():
    """After training, step 0 and the last step generate like set_a and set_b."""
    scvi.settings.seed = 0
    adata, centres = _separated_sets()
    gde.GDEModel.setup_anndata(adata, set_key="set", obsm_key="X_pca")
    model = gde.GDEModel(adata, decoder="cvae", **SMALL)
    model.train(
        max_steps=150,
        set_size=32,
        n_sets_per_batch=6,
        early_stopping=False,
        enable_progress_bar=False,
    )
    path = model.interpolate("s0", "s1", n_points=3, n_cells=300, seed=0)
    ends = model.sample(sets=["s0", "s1"], n_cells=300, seed=1)
    for step, name in ((0, "s0"), (2, "s1")):
        gen = path.X[(path.obs["point"] == step).to_numpy()].mean(0)
        ref = ends.X[(ends.obs["set"] == name).to_numpy()].mean(0)
        other = ends.X[(ends.obs["set"] != name).to_numpy()].mean(0)
        assert np.linalg.norm(gen - ref) < 0.25 * np.linalg.norm(gen - other)
    # the generated sets themselves sit near the real ones
    real = adata.obsm["X_pca"][(adata.obs["set"] == "s0").to_numpy()].mean(0)
    gen = ends.X[(ends.obs["set"] == "s0").to_numpy()].mean(0)
    assert np.linalg.norm(gen - real) < 0.2 * np.linalg.norm(centres[0] - centres[1])
    middle = path.X[(path.obs["point"] == 1).to_numpy()].mean(0)
    assert np.linalg.norm(middle - path.X[(path.obs["point"] == 0).to_numpy()].mean(0)) > 0.1


def test_ddpm_ancestral_and_few_step_samplers(continuous_models):
    model = continuous_models["ddpm"]
    full = model.sample(sets=["s1"], n_cells=20, seed=0)
    few = model.sample(sets=["s1"], n_cells=20, seed=0, n_steps=5)
    guided = model.sample(sets=["s1"], n_cells=20, seed=0, n_steps=5, guidance_scale=2.0)
    for out in (full, few, guided):
        assert out.shape == (20, 3) and np.isfinite(out.X).all()
    assert not np.allclose(few.X, guided.X)
    # guidance over all of the diffusion time is plain guidance; over no step, none
    kw = {"sets": ["s1"], "n_cells": 20, "seed": 0, "n_steps": 5, "guidance_scale": 2.0}
    everywhere = model.sample(guidance_interval=(0.0, 1.0), **kw)
    np.testing.assert_array_equal(everywhere.X, guided.X)
    np.testing.assert_array_equal(model.sample(guidance_interval=(0.999, 1.0), **kw).X, few.X)
    path = {"n_points": 2, "n_cells": 20, "seed": 0, "n_steps": 5}
    middle = model.interpolate(
        "s0", "s1", guidance_scale=2.0, guidance_interval=(0.25, 0.75), **path
    )
    assert middle.shape == (40, 3) and np.isfinite(middle.X).all()
    assert not np.allclose(middle.X, model.interpolate("s0", "s1", **path).X)
    with pytest.raises(ValueError, match="guidance_interval"):
        model.sample(guidance_interval=(0.5, 0.5), **kw)
    with pytest.raises(ValueError, match="decoder='ddpm' only"):
        continuous_models["cvae"].sample(sets=["s1"], guidance_interval=(0.25, 0.75))


def test_ddpm_save_load_generates_identically(continuous_models, tmp_path):
    model = continuous_models["ddpm"]
    model.save(tmp_path / "m", save_anndata=False)
    loaded = gde.GDEModel.load(tmp_path / "m", adata=model.adata)
    a = model.sample(sets=["s3"], n_cells=10, seed=0, n_steps=5).X
    b = loaded.sample(sets=["s3"], n_cells=10, seed=0, n_steps=5).X
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert loaded.module.noise_schedule.n_steps == 50


def test_float_layer_is_continuous_and_counts_are_refused_as_normal():
    adata = small_sets()
    adata.layers["logn"] = np.log1p(adata.X.toarray()).astype(np.float32)
    gde.GDEModel.setup_anndata(adata, set_key="set", layer="logn")
    with pytest.warns(UserWarning, match="continuous"):
        model = gde.GDEModel(adata, **SMALL)
    assert model.module.likelihood == "normal"
    with pytest.raises(ValueError, match="counts"):
        gde.GDEModel(adata, likelihood="nb", **SMALL)
    counts = small_sets()
    gde.GDEModel.setup_anndata(counts, set_key="set")
    for decoder in ("cvae", "ddpm"):
        with pytest.raises(ValueError, match="raw counts"):
            gde.GDEModel(counts, decoder=decoder, likelihood="normal", **SMALL)


def test_generated_cells_name_the_set_column_as_at_setup():
    scvi.settings.seed = 0
    adata = small_sets(n_sets=6).copy()
    adata.obs = adata.obs.rename(columns={"set": "clone"})
    gde.GDEModel.setup_anndata(adata, set_key="clone", batch_key="batch")
    model = gde.GDEModel(adata, n_latent=4, n_hidden=16, n_set_hidden=16)
    model.train(**{**TRAIN_KW, "max_epochs": 1})
    out = model.sample(sets=["set_0", "set_2"], n_cells=3, seed=0)
    assert "clone" in out.obs.columns and "set" not in out.obs.columns
    assert list(out.obs["clone"].cat.categories) == ["set_0", "set_2"]
    path = model.interpolate("set_0", "set_2", n_points=3, n_cells=2, seed=0)
    assert path.obs["clone"].nunique() == 3
    # the comparison with real cells reads the same column
    table = gde.tl.generated_vs_real(adata, out, set_key="clone")
    assert set(table["set"]) == {"set_0", "set_2"}
