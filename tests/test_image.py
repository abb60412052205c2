"""gde.image: sets of images, end to end through the public API."""

import gzip

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import scvi
import torch
from anndata import AnnData

import gde
from gde.image import ImageGDEModel, images_to_adata
from gde.nn import ConditionalUNet, ImageFeaturizer

TRAIN_KW = {
    "max_steps": 4,
    "steps_per_epoch": 2,
    "set_size": 12,
    "n_sets_per_batch": 4,
    "enable_progress_bar": False,
}
SMALL = {
    "n_latent": 8,
    "n_features": 8,
    "n_set_hidden": 16,
    "base_channels": 8,
    "channel_mults": (1, 2),
    "n_diffusion_steps": 20,
    "featurizer_widths": (8, 8),
}


def digits(n_sets=10, seed=0):
    return gde.datasets.digit_sets(n_sets=n_sets, n_images_per_set=30, seed=seed)


@pytest.fixture(scope="module")
def trained_image():
    scvi.settings.seed = 0
    full = digits()
    train = full[full.obs["split"] == "train"].copy()
    ImageGDEModel.setup_anndata(train, set_key="set")
    model = ImageGDEModel(train, **SMALL)
    model.train(**TRAIN_KW)
    return model, full


def test_digit_sets_protocol_and_ground_truth():
    adata = gde.datasets.digit_sets(n_sets=12, n_images_per_set=50, seed=1)
    info = adata.uns["digit_sets"]
    assert adata.obsm["X_image"].shape == (12 * 50, 8, 8)
    assert 0 <= adata.obsm["X_image"].min() and adata.obsm["X_image"].max() <= 1
    weights = info["weights"]
    assert np.allclose(weights.sum(1), 1) and ((weights > 0).sum(1) <= 3).all()
    # held-out sets draw from images no training set uses
    src = adata.obs.groupby("split", observed=True)["source_index"].apply(set)
    assert not (src["train"] & src["held_out"])
    # proportions follow the weights; the ground truth is a metric with a zero diagonal
    counts = pd.crosstab(adata.obs["set"], adata.obs["label"]).reindex(
        columns=weights.columns, fill_value=0
    )
    assert np.abs(counts.to_numpy() / 50 - weights.to_numpy()).mean() < 0.05
    d = info["distance"].to_numpy()
    assert (
        np.allclose(d, d.T)
        and np.allclose(np.diag(d), 0)
        and (d[~np.eye(12, dtype=bool)] > 0).all()
    )
    # sets with the same single class are at distance 0; different classes at their W2
    one = gde.datasets.digit_sets(n_sets=6, n_classes_per_set=1, seed=2).uns["digit_sets"]
    w, dist, cw2 = one["weights"].to_numpy(), one["distance"].to_numpy(), one["class_w2"]
    a, b = w[0].argmax(), w[1].argmax()
    assert dist[0, 1] == pytest.approx(np.sqrt(cw2.iloc[a, b]), abs=1e-9)


def test_setup_reads_images_in_place_and_writes_only_documented_keys():
    adata = digits(n_sets=4)
    images = adata.obsm["X_image"]
    before_obs, before_uns = list(adata.obs.columns), set(adata.uns)
    ImageGDEModel.setup_anndata(adata, set_key="set")
    assert adata.obsm["X_image"] is images and set(adata.obsm) == {"X_image"}
    assert set(adata.obs.columns) - set(before_obs) <= {"_scvi_set", "_scvi_batch"}
    assert set(adata.uns) - before_uns == {"_scvi_uuid", "_scvi_manager_uuid"}
    model = ImageGDEModel(adata, **SMALL)
    assert model.module.image_shape == (1, 8, 8) and not model.module.channel_axis
    assert "1×8×8 images" in model._model_summary_string


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((8, 64)), "shape"),
        (np.full((8, 4, 4), np.nan), "NaN"),
        (np.zeros((8, 1, 1, 4, 4)), "shape"),
    ],
)
def test_bad_images_are_refused(images, message):
    adata = AnnData(np.zeros((8, 0), dtype=np.float32))
    adata.obs["set"] = pd.Categorical(["a", "b"] * 4)
    adata.obsm["X_image"] = images
    with pytest.raises(ValueError, match=message):
        ImageGDEModel.setup_anndata(adata, set_key="set")


def test_bad_input_errors():
    adata = digits(n_sets=3)
    with pytest.raises(KeyError, match="obsm"):
        ImageGDEModel.setup_anndata(adata, set_key="set", image_key="nope")
    adata.obs["set"] = adata.obs["set"].astype(object)
    adata.obs.iloc[0, adata.obs.columns.get_loc("set")] = np.nan
    with pytest.raises(ValueError, match="set"):
        ImageGDEModel.setup_anndata(adata, set_key="set")
    with pytest.raises(ValueError, match="different shapes"):
        images_to_adata([np.zeros((4, 4)), np.zeros((5, 5))], ["a", "b"])
    bad = digits(n_sets=3)
    bad.obsm["X_image"] = np.zeros((bad.n_obs, 6, 6), dtype=np.float32)  # 6: not halvable twice
    ImageGDEModel.setup_anndata(bad, set_key="set")
    with pytest.raises(ValueError, match="divisible by 4"):
        ImageGDEModel(bad, **{**SMALL, "channel_mults": (1, 2, 2)})


def test_images_to_adata_uint8_colour_roundtrip():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(48, 3, 8, 8), dtype=np.uint8)
    adata = images_to_adata(images, np.repeat(["w1", "w2", "w3", "w4"], 12), set_key="well")
    ImageGDEModel.setup_anndata(adata, set_key="well")
    scvi.settings.seed = 0
    model = ImageGDEModel(adata, w2_weight=0.0, **SMALL)
    assert model.module.pixel_range == (0.0, 255.0) and model.module.channel_axis
    model.train(**{**TRAIN_KW, "n_sets_per_batch": 3, "max_steps": 2})
    out = model.sample(sets=["w1"], n_images=3, n_steps=5, seed=0)
    assert out.obsm["X_image"].shape == (3, 3, 8, 8) and out.obsm["X_image"].dtype == np.uint8


def test_untrained_model_refuses():
    adata = digits(n_sets=4)
    ImageGDEModel.setup_anndata(adata, set_key="set")
    with pytest.raises(RuntimeError, match="not been trained"):
        ImageGDEModel(adata, **SMALL).get_distribution_embeddings()


def test_embeddings_written_like_cells(trained_image):
    model, full = trained_image
    emb = model.get_distribution_embeddings(full, copy_to_cells=True)
    assert emb.shape == (10, 8) and np.isfinite(emb.to_numpy()).all()
    assert full.uns["X_gde"]["params"]["model"] == "ImageGDEModel"
    assert full.obsm["X_gde"].shape == (full.n_obs, 8)
    assert model.get_distribution_distances(full).shape == (10, 10)
    assert model.get_set_adata(full).n_obs == 10
    stop = model.history["stop"].iloc[-1]
    assert stop["steps"] == 4 and stop["set_size"] == 12


@pytest.mark.parametrize("k", [1, 3])
def test_embedding_is_invariant_to_order_and_replication(trained_image, k):
    model, full = trained_image
    ref = model.get_distribution_embeddings(full.copy(), key_added=None)
    rows = np.flatnonzero(full.obs["set"] == "set_3")
    others = np.flatnonzero(full.obs["set"] != "set_3")
    order = np.concatenate([others, np.random.default_rng(0).permutation(np.repeat(rows, k))])
    modified = images_to_adata(full.obsm["X_image"][order], full.obs["set"].to_numpy()[order])
    emb = model.get_distribution_embeddings(modified, key_added=None)
    np.testing.assert_allclose(emb.loc["set_3"], ref.loc["set_3"], atol=1e-5)


def test_chunked_embedding_equals_one_shot(trained_image):
    model, full = trained_image
    small = model.get_distribution_embeddings(full.copy(), batch_size=7, key_added=None)
    whole = model.get_distribution_embeddings(full.copy(), batch_size=10**6, key_added=None)
    pd.testing.assert_frame_equal(small, whole, atol=1e-5, rtol=0)
    # module.embed takes (n_sets, set_size, C, H, W) images, scaled as input_counts gives them
    images = torch.as_tensor(full[full.obs["set"] == "set_5"].obsm["X_image"])[None, :, None]
    images = model.module.scale(images)
    with torch.no_grad():
        dense = model.module.embed(images, torch.zeros(1, images.shape[1], 1)).numpy()
    np.testing.assert_allclose(whole.loc["set_5"], dense[0], atol=1e-5)


def test_sample_and_interpolate_images(trained_image):
    model, full = trained_image
    out = model.sample(sets=["set_1", "set_2"], n_images=3, adata=full, n_steps=5, seed=0)
    images = out.obsm["X_image"]
    assert images.shape == (6, 8, 8) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1  # the training pixel range
    assert list(out.obs["set"].cat.categories) == ["set_1", "set_2"]
    again = model.sample(sets=["set_1", "set_2"], n_images=3, adata=full, n_steps=5, seed=0)
    np.testing.assert_array_equal(again.obsm["X_image"], images)  # seeded
    z = model.get_distribution_embeddings(full, key_added=None).iloc[:2]
    guided = model.sample(embeddings=z, n_images=2, n_steps=3, guidance_scale=2.0)
    assert guided.obsm["X_image"].shape == (4, 8, 8)
    # guidance over all of the diffusion time is plain guidance; over no step, none
    kw = {"embeddings": z, "n_images": 2, "n_steps": 3, "seed": 0}
    everywhere = model.sample(guidance_scale=2.0, guidance_interval=(0.0, 1.0), **kw)
    plain = model.sample(guidance_scale=2.0, guidance_interval=None, **kw)
    np.testing.assert_array_equal(everywhere.obsm["X_image"], plain.obsm["X_image"])
    # three DDIM steps are at t = 399, 200 and 0 of 400: none falls in (0.6, 0.9)
    none = model.sample(guidance_scale=2.0, guidance_interval=(0.6, 0.9), **kw)
    unguided = model.sample(guidance_scale=1.0, **kw)
    np.testing.assert_array_equal(none.obsm["X_image"], unguided.obsm["X_image"])
    # the default guides 2 over the middle half: the step at t = 200 only
    default = model.sample(**kw).obsm["X_image"]
    middle = model.sample(guidance_scale=2.0, guidance_interval=(0.25, 0.75), **kw)
    np.testing.assert_array_equal(default, middle.obsm["X_image"])
    assert not np.array_equal(default, unguided.obsm["X_image"])
    assert not np.array_equal(default, plain.obsm["X_image"])
    with pytest.raises(ValueError, match="guidance_interval"):
        model.sample(guidance_scale=2.0, guidance_interval=(0.8, 0.2), **kw)
    path = model.interpolate("set_1", "set_2", n_points=3, n_images=2, adata=full, n_steps=3)
    assert path.n_obs == 6 and list(np.unique(path.obs["point"])) == [0, 1, 2]
    axes = gde.pl.image_grid(path, "point", n_per_group=3, show=False)
    assert axes.shape == (3, 3) and not axes[0, 2].images  # 2 images per point: one empty
    assert axes[2, 0].get_ylabel() == "2"
    plt.close("all")
    other = full.copy()
    other.obsm["X_image"] = np.zeros((full.n_obs, 16, 16), dtype=np.float32)
    with pytest.raises(ValueError, match="trained on images of shape"):
        model.get_distribution_embeddings(other)


def test_save_load_roundtrip(trained_image, tmp_path):
    model, full = trained_image
    model.save(tmp_path / "m", save_anndata=True)
    loaded = ImageGDEModel.load(tmp_path / "m")
    a = model.get_distribution_embeddings(full.copy(), key_added=None)
    b = loaded.get_distribution_embeddings(full.copy(), key_added=None)
    pd.testing.assert_frame_equal(a, b, atol=1e-6, rtol=0)
    # images debias their W2 targets by default: train() measured the floor
    assert float(model.module.w2_offset) > 0
    # keep a moving average of the weights, which the saved model holds, and mix half
    # of the training draws
    stop = model.history["stop"].iloc[-1]
    assert stop["weight_ema"] == 0.999 and stop["mix_sets"] == 0.5


def test_untrained_embedding_is_the_pixel_mean_pseudobulk():
    """The mean path: before training, latent distances are those of set pixel means."""
    adata = digits(n_sets=8)
    ImageGDEModel.setup_anndata(adata, set_key="set")
    scvi.settings.seed = 0
    model = ImageGDEModel(adata, **SMALL)
    with torch.no_grad():
        images = torch.as_tensor(adata.obsm["X_image"])[:, None]  # (n, C, H, W)
        images = model.module.scale(images)  # what input_counts gives module.embed
        sets = adata.obs["set"].cat.codes.to_numpy()
        rows = [np.flatnonzero(sets == s) for s in range(8)]
        z = torch.stack(
            [model.module.embed(images[r][None], torch.zeros(1, len(r), 1))[0] for r in rows]
        ).numpy()
    means = np.stack([adata.obsm["X_image"][sets == s].reshape(-1, 64).mean(0) for s in range(8)])
    comps = model.module.reference_components.numpy()[:, :8]
    projected = (means * 2 - 1) @ comps  # pixels scaled to [-1, 1], on the top axes
    d_z = np.linalg.norm(z[:, None] - z[None], axis=-1)
    d_p = np.linalg.norm(projected[:, None] - projected[None], axis=-1)
    np.testing.assert_allclose(d_z, d_p, rtol=1e-3, atol=1e-4)


def test_unet_and_featurizer_shapes_and_isolation():
    torch.manual_seed(0)
    unet = ConditionalUNet(3, n_cond=5, base_channels=8, channel_mults=(1, 2, 2)).eval()
    x, t, c = torch.randn(4, 3, 12, 20), torch.tensor([0, 5, 9, 1]), torch.randn(4, 5)
    assert unet(x, t, c).shape == x.shape
    # each image's prediction depends on that image only (GroupNorm, no BatchNorm)
    for layer in unet.output:
        if isinstance(layer, torch.nn.Conv2d):
            torch.nn.init.normal_(layer.weight)
    a = unet(x, t, c)
    x2 = x.clone()
    x2[1:] = torch.randn(3, 3, 12, 20)
    torch.testing.assert_close(unet(x2, t, c)[0], a[0])
    eps_fn = unet.sampler(c, guidance_scale=2.0)
    torch.testing.assert_close(
        eps_fn(x, torch.full((4,), 3)),
        unet.guided(x, torch.full((4,), 3), c, 2.0),
        atol=1e-5,
        rtol=1e-5,
    )
    feat = ImageFeaturizer(3, n_output=6, widths=(4, 8))
    assert feat(torch.randn(2, 5, 3, 8, 8)).shape == (2, 5, 6)
    with pytest.raises(ValueError, match="divisible"):
        unet(torch.randn(1, 3, 10, 10), t[:1], c[:1])


def test_fashion_mnist_loader(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(10), 3).astype(np.uint8)

    def write(name, arr):
        header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(
            int(s).to_bytes(4, "big") for s in arr.shape
        )
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(header + arr.tobytes())

    write("train-images-idx3-ubyte.gz", images)
    write("train-labels-idx1-ubyte.gz", labels)
    got, got_labels = gde.datasets.load_fashion_mnist(tmp_path)
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(got_labels, labels)
    sets = gde.datasets.fashion_mnist_sets(n_sets=4, n_images_per_set=10, path=tmp_path)
    assert sets.obsm["X_image"].shape == (40, 28, 28) and sets.obsm["X_image"].max() <= 1
    assert "fashion_mnist_sets" in sets.uns
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        gde.datasets.load_fashion_mnist(tmp_path / "missing")


def test_fashion_mnist_real_files():
    """The real Debian files, where installed: both splits, every class, 10 % each."""
    from gde.datasets._images import FASHION_MNIST_DIR

    if not (FASHION_MNIST_DIR / "train-labels-idx1-ubyte.gz").exists():
        pytest.skip(f"Fashion-MNIST is not installed in {FASHION_MNIST_DIR}")
    for split, n in (("train", 60_000), ("test", 10_000)):
        images, labels = gde.datasets.load_fashion_mnist(split=split)
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        np.testing.assert_array_equal(np.bincount(labels), np.full(10, n // 10))
        assert 0 < images.mean() < 255


def test_guidance_scores_rank_by_divergence_from_real_images():
    from gde.image._guidance import score_guidance

    rng = np.random.default_rng(0)
    real = {s: rng.random((40, 6, 6)).astype(np.float32) for s in ("a", "b")}

    def sample(names, n, seed, scale, interval):  # the further from 2, the noisier
        noise = np.random.default_rng(seed)
        return [
            real[s][:n] + abs(scale - 2.0) * noise.normal(size=real[s][:n].shape) for s in names
        ]

    scores = score_guidance(sample, real, [(1.0, None), (2.0, (0.25, 0.75)), (3.5, None)], 20, 0)
    assert list(scores.index) == ["none", "2 over (0.25, 0.75)", "3.5 throughout"]
    assert scores["sinkhorn"].idxmin() == "2 over (0.25, 0.75)"
    assert scores.loc["3.5 throughout", "sinkhorn"] > scores.loc["none", "sinkhorn"]


def test_tune_guidance_sets_the_samplers_default_and_is_saved(trained_image, tmp_path):
    model, full = trained_image
    model.save(tmp_path / "m")
    tuned = ImageGDEModel.load(tmp_path / "m", adata=model.adata)
    assert tuned.guidance_ is None
    held = list(full.obs.loc[full.obs["split"] != "train", "set"].unique()[:2])
    candidates = [(1.0, None), (2.0, (0.25, 0.75)), (3.0, None)]
    scores = tuned.tune_guidance(held, adata=full, candidates=candidates, n_images=4, n_steps=5)
    assert list(scores.index) == ["none", "2 over (0.25, 0.75)", "3 throughout"]
    assert (scores["sinkhorn"] >= 0).all() and scores["sinkhorn"].nunique() == 3
    best = scores["sinkhorn"].idxmin()
    assert scores["chosen"].sum() == 1 and scores.loc[best, "chosen"]
    chosen = (scores.loc[best, "guidance_scale"], scores.loc[best, "guidance_interval"])
    assert tuned.guidance_ == chosen
    z = tuned.get_distribution_embeddings(full, key_added=None).iloc[:2]
    kw = {"embeddings": z, "n_images": 2, "n_steps": 3, "seed": 0}
    by_default = tuned.sample(**kw).obsm["X_image"]
    explicit = tuned.sample(guidance_scale=chosen[0], guidance_interval=chosen[1], **kw)
    np.testing.assert_array_equal(by_default, explicit.obsm["X_image"])
    assert len(tuned.validation_sets_) > 0  # by default it compares on these
    again = tuned.tune_guidance(candidates=[(1.0, None), (2.0, None)], n_images=2, n_steps=3)
    pick = again.loc[again["chosen"]].iloc[0]
    assert tuned.guidance_ == (pick["guidance_scale"], pick["guidance_interval"])
    tuned.guidance_ = chosen
    tuned.save(tmp_path / "t")
    assert ImageGDEModel.load(tmp_path / "t", adata=model.adata).guidance_ == chosen
    assert model.guidance_ is None  # the model it was loaded from keeps the default


def test_tune_guidance_bad_input(trained_image):
    model, full = trained_image
    held = list(full.obs.loc[full.obs["split"] != "train", "set"].unique()[:1])
    with pytest.raises(ValueError, match="guidance candidate"):
        model.tune_guidance(held, adata=full, candidates=[(2.0,)])
    with pytest.raises(ValueError, match="scale >= 1"):
        model.tune_guidance(held, adata=full, candidates=[(0.5, None)])
    with pytest.raises(ValueError, match="0 <= start < end <= 1"):  # before any sampling
        model.tune_guidance(held, adata=full, candidates=[(1.0, None), (2.0, (0.8, 0.2))])
    with pytest.raises(ValueError, match="Sets not found"):
        model.tune_guidance(["no such set"], adata=full)
    with pytest.raises(ValueError, match="'auto'"):
        model.sample(n_images=1, guidance_interval="middle")
    untuned = ImageGDEModel(model.adata, **SMALL)
    with pytest.raises(ValueError, match="no validation sets"):
        untuned.tune_guidance()
    assert model.guidance_ is None
