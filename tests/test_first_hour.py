"""What a new user meets first: no silent mismatches, no random output, quiet, clear."""

import logging
import warnings

import matplotlib
import numpy as np
import pytest
import scanpy as sc
import scvi
from scipy import sparse

import gde
from conftest import TRAIN_KW, small_sets

matplotlib.use("Agg")


def _model(adata, **kw):
    return gde.GDEModel(adata, n_latent=4, n_hidden=16, n_set_hidden=16, **kw)


@pytest.fixture(scope="module")
def normalised():
    """Counts in layers['counts'], X log-normalised to the median depth as scanpy does."""
    scvi.settings.seed = 0
    adata = small_sets(n_sets=6)
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata)  # median target, not 10,000
    sc.pp.log1p(adata)
    gde.GDEModel.setup_anndata(adata, set_key="set", layer="counts")
    model = _model(adata)
    model.train(**TRAIN_KW)
    return adata, model


# ------------------------------------------------------------------ silently wrong
def test_generated_vs_real_compares_counts_with_counts(normalised):
    adata, model = normalised
    gen = model.sample(sets=["set_0", "set_1"], n_cells=50, seed=0)
    table = gde.tl.generated_vs_real(adata, gen, set_key="set")
    same = gde.tl.generated_vs_real(adata, gen, set_key="set", layer="counts")
    # the real side is the counts layer normalised like the generated counts, not X
    np.testing.assert_allclose(table["mean_real"], same["mean_real"])
    ax = gde.pl.interpolation(adata, model.interpolate("set_0", "set_1", n_cells=20), show=False)
    assert ax.get_title() == "set_0 → set_1"


def test_counts_against_log_values_without_counts_layer_is_refused(normalised):
    adata, model = normalised
    gen = model.sample(sets=["set_0"], n_cells=20, seed=0)
    del gen.uns["gde_sample"]  # nothing says where the counts are
    real = adata.copy()
    del real.layers["counts"]
    with pytest.raises(ValueError, match="keep the raw counts in a layer"):
        gde.tl.generated_vs_real(real, gen, set_key="set")
    with pytest.raises(ValueError, match="pass layer='counts'"):
        gde.pl.generated_vs_real(adata, gen, set_key="set", show=False)
    path = model.interpolate("set_0", "set_1", n_cells=10)
    del path.uns["gde_sample"]
    with pytest.raises(ValueError, match="compare different scales"):
        gde.pl.interpolation(real, path, show=False)


def test_untrained_model_refuses_to_embed_or_generate(adata):
    gde.GDEModel.setup_anndata(adata, set_key="set")
    model = _model(adata)
    with pytest.raises(RuntimeError, match="has not been trained"):
        model.get_distribution_embeddings()
    with pytest.raises(RuntimeError, match="has not been trained"):
        model.sample(n_cells=5)
    with pytest.raises(RuntimeError, match="has not been trained"):
        model.get_set_adata()
    assert "X_gde" not in adata.uns
    for bad in ({"max_steps": 0}, {"max_epochs": 0}):
        with pytest.raises(ValueError, match="random weights"):
            model.train(**bad)
    model.is_trained_ = True  # the documented opt-in
    assert model.get_distribution_embeddings(key_added=None).shape == (10, 4)


def test_short_run_says_it_stopped_early(adata):
    gde.GDEModel.setup_anndata(adata, set_key="set")
    model = _model(adata)
    with pytest.warns(UserWarning, match=r"step cap \(3 optimiser steps\).*still improving"):
        model.train(max_steps=3, set_size=16, n_sets_per_batch=4, enable_progress_bar=False)
    assert "still improving" in model.history["stop"]["reason"].iloc[0]


@pytest.mark.parametrize("dense", [False, True])
def test_negative_entry_in_integer_counts_is_refused(adata, dense):
    x = adata.X.toarray()
    x[5, 3] = -2
    adata.X = x if dense else sparse.csr_matrix(x)
    gde.GDEModel.setup_anndata(adata, set_key="set")
    with pytest.raises(ValueError, match=r"1 of them are negative \(the first in row 5, col"):
        _model(adata)
    # continuous values are still welcome when said so
    _model(adata, likelihood="normal")


def test_too_few_pairs_are_not_reported():
    z = np.random.default_rng(0).normal(size=(4, 2))
    truth = np.abs(z[:, None, 0] - z[None, :, 0])
    with pytest.raises(ValueError, match="Only 6 set pairs"):
        gde.metrics.distance_spearman(z, truth)
    assert np.isfinite(gde.metrics.distance_spearman(z, truth, min_pairs=6))


def test_one_validation_set_gives_a_caution():
    adata = small_sets(n_sets=11)
    gde.GDEModel.setup_anndata(adata, set_key="set")
    with pytest.warns(UserWarning, match="Only 1 validation set"):
        _model(adata).train(**TRAIN_KW)


# ------------------------------------------------------------- fails as documented
def test_load_without_adata_says_it_is_required(adata, tmp_path):
    gde.GDEModel.setup_anndata(adata, set_key="set")
    model = _model(adata)
    model.train(**TRAIN_KW)
    model.save(tmp_path / "m")
    with pytest.raises(ValueError, match="`adata=` is required"):
        gde.GDEModel.load(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="folder does not exist"):
        gde.GDEModel.load(tmp_path / "nothing", adata=adata)
    model.save(tmp_path / "with_data", save_anndata=True)
    assert gde.GDEModel.load(tmp_path / "with_data").is_trained_


# ---------------------------------------------------------------------- noise
def test_training_and_embedding_are_quiet_and_restore_settings(capfd):
    adata = small_sets()
    train = adata[adata.obs["set"] != "set_9"].copy()
    lightning_level = logging.getLogger("lightning.pytorch").level
    filters = list(warnings.filters)
    capfd.readouterr()
    gde.GDEModel.setup_anndata(train, set_key="set", batch_key="batch")
    model = _model(train)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.train(**TRAIN_KW)
        model.get_distribution_embeddings(adata, key_added=None)  # transfers the setup
        warnings.warn("the user's own warning", UserWarning, stacklevel=1)
    out, err = capfd.readouterr()
    for noise in ("GPU available", "TPU", "Tip", "LeafSpec", "attempting to transfer"):
        assert noise not in out + err
    messages = [str(w.message) for w in caught]
    assert not any("log_every_n_steps" in m or "LeafSpec" in m for m in messages)
    assert "the user's own warning" in messages
    assert logging.getLogger("lightning.pytorch").level == lightning_level
    assert warnings.filters == filters


# --------------------------------------------------------------------- figures
def test_heatmap_gives_each_annotation_its_own_palette():
    adata = small_sets()
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = _model(adata)
    model.train(**TRAIN_KW)
    model.get_distribution_embeddings()
    sets = model.get_set_adata()
    sets.obs["group"] = np.where(np.arange(sets.n_obs) < 5, "a", "b")
    ax = gde.pl.distance_heatmap(sets, color=["batch", "group"], show=False)
    legend = ax.get_legend()
    colours = {
        t.get_text(): tuple(h.get_facecolor())
        for t, h in zip(legend.get_texts(), legend.legend_handles, strict=True)
        if hasattr(h, "get_facecolor")
    }
    assert colours["batch_0"] != colours["a"] and colours["batch_1"] != colours["b"]
    titles = [a.get_title() for a in ax.figure.axes if a.get_title()]
    assert titles == ["GDE embedding: distances between 10 sets, by batch, group"]
    ax = gde.pl.set_embedding(adata, color="batch", show=False)
    assert ax.get_title() == "GDE embedding, 10 sets: batch"


def test_interpolation_end_labels_sit_on_opposite_sides(normalised):
    adata, model = normalised
    path = model.interpolate("set_0", "set_1", n_cells=20)
    ax = gde.pl.interpolation(adata, path, show=False)
    start, end = (t for t in ax.texts if t.get_text() in ("set_0", "set_1"))
    (x0, y0), (x1, y1) = start.xyann, end.xyann
    assert np.sign(x0) == -np.sign(x1) and np.sign(y0) == -np.sign(y1)
