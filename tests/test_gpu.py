"""On a CUDA device: both decoders, MuData, mixed precision, the image and sequence
models. Skipped without a GPU.

Run with ``pytest -m gpu`` on a machine with CUDA (``benchmarks/gpu.sh`` runs them and
the GPU figures together).
"""

import numpy as np
import pytest
import scvi
import torch

import gde
import test_image
import test_seq
from conftest import TRAIN_KW, small_sets
from test_mudata import citeseq

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _dense(x):
    return np.asarray(x.todense() if hasattr(x, "todense") else x)


@pytest.mark.parametrize("decoder", ["cvae", "ddpm"])
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_train_embed_sample_interpolate_on_the_gpu(decoder, precision):
    scvi.settings.seed = 0
    adata = small_sets()
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = gde.GDEModel(adata, decoder=decoder, n_latent=6, n_hidden=32, n_set_hidden=32)
    model.train(accelerator="auto", precision=precision, **TRAIN_KW)
    assert str(model.device).startswith("cuda")
    emb = model.get_distribution_embeddings(adata)
    assert np.isfinite(emb.to_numpy()).all()
    steps = {"n_steps": 10} if decoder == "ddpm" else {}  # the CVAE has no sampler steps
    gen = model.sample(sets=["set_0", "set_1"], n_cells=50, seed=0, **steps)
    assert gen.n_obs == 100 and np.isfinite(np.asarray(gen.X.sum()))
    path = model.interpolate("set_0", "set_1", n_points=3, n_cells=20, seed=0, **steps)
    assert path.n_obs == 60
    # the same seed draws the same cells on the GPU
    again = model.sample(sets=["set_0", "set_1"], n_cells=50, seed=0, **steps)
    np.testing.assert_allclose(_dense(again.X), _dense(gen.X))


def test_mudata_on_the_gpu():
    scvi.settings.seed = 0
    mdata = citeseq()
    gde.GDEModel.setup_mudata(mdata, set_key="set", batch_key="batch")
    model = gde.GDEModel(mdata, n_latent=6, n_hidden=32, n_set_hidden=32)
    model.train(accelerator="gpu", devices=1, **TRAIN_KW)
    assert str(model.device).startswith("cuda")
    assert np.isfinite(model.get_distribution_embeddings(mdata).to_numpy()).all()
    gen = model.sample(sets=["set_0"], n_cells=30, seed=0)
    assert gen.n_obs == 30


def test_pinned_memory_on_the_gpu():
    adata = small_sets()
    gde.GDEModel.setup_anndata(adata, set_key="set")
    model = gde.GDEModel(adata, n_latent=4, n_hidden=16, n_set_hidden=16)
    model.train(accelerator="gpu", devices=1, **TRAIN_KW)
    assert model.trainer.datamodule.pin_memory


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_image_model_on_the_gpu(precision):
    scvi.settings.seed = 0
    adata = test_image.digits()
    gde.image.ImageGDEModel.setup_anndata(adata, set_key="set")
    model = gde.image.ImageGDEModel(adata, **test_image.SMALL)
    model.train(accelerator="gpu", devices=1, precision=precision, **test_image.TRAIN_KW)
    assert str(model.device).startswith("cuda")
    assert np.isfinite(model.get_distribution_embeddings(adata).to_numpy()).all()
    sets = list(adata.obs["set"].cat.categories[:2])
    gen = model.sample(sets=sets, n_images=6, seed=0, n_steps=5)
    images = gen.obsm["X_image"]
    assert images.shape == (12, 8, 8) and np.isfinite(images).all()
    again = model.sample(sets=sets, n_images=6, seed=0, n_steps=5)
    np.testing.assert_allclose(again.obsm["X_image"], images)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_sequence_model_on_the_gpu(precision):
    scvi.settings.seed = 0
    adata = test_seq.motif_data()
    gde.seq.SeqGDEModel.setup_anndata(adata, set_key="set", sequence_key="sequence")
    model = gde.seq.SeqGDEModel(adata, **test_seq.SMALL)
    model.train(accelerator="gpu", devices=1, precision=precision, **test_seq.TRAIN_KW)
    assert str(model.device).startswith("cuda")
    assert np.isfinite(model.get_distribution_embeddings(adata).to_numpy()).all()
    sets = list(adata.obs["set"].cat.categories[:2])
    gen = model.sample(sets=sets, n_sequences=10, seed=0)
    assert gen.n_obs == 20 and gen.obs["sequence"].str.len().gt(0).all()
    again = model.sample(sets=sets, n_sequences=10, seed=0)
    assert list(again.obs["sequence"]) == list(gen.obs["sequence"])
