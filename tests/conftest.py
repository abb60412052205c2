import logging
import warnings

import pytest
import scvi

import gde


def pytest_configure(config):
    warnings.filterwarnings("ignore", module="lightning")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def small_sets(n_sets=10, n_genes=40, seed=0, **kwargs):
    """A tiny simulated data set: sets of 30-60 cells, two batches."""
    kwargs.setdefault("n_cells_per_set", (30, 60))
    kwargs.setdefault("n_batches", 2)
    return gde.datasets.simulate_sets(n_sets=n_sets, n_genes=n_genes, seed=seed, **kwargs)


TRAIN_KW = {
    "max_epochs": 2,
    "steps_per_epoch": 1,
    "set_size": 16,
    "n_sets_per_batch": 4,
    "enable_progress_bar": False,
}


@pytest.fixture
def adata():
    return small_sets()


@pytest.fixture(scope="module")
def trained():
    """A model trained for two epochs on 8 of 10 sets; returns (model, full adata)."""
    scvi.settings.seed = 0
    full = small_sets()
    held_out = ["set_8", "set_9"]
    train = full[~full.obs["set"].isin(held_out)].copy()
    gde.GDEModel.setup_anndata(train, set_key="set", batch_key="batch")
    model = gde.GDEModel(train, n_latent=8, n_hidden=32, n_set_hidden=32)
    model.train(**TRAIN_KW)
    return model, full
