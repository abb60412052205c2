"""Data left on disk: backed h5ad and zarr train and embed as the same data in memory."""

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import scvi

import gde
import gde.data._backed as backed
from conftest import small_sets

TRAIN = {"max_steps": 4, "steps_per_epoch": 2, "set_size": 16, "enable_progress_bar": False}


def _train_and_embed(adata):
    scvi.settings.seed = 0
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = gde.GDEModel(adata, n_latent=4, n_hidden=16, n_set_hidden=16)
    model.train(**TRAIN)
    return model, model.get_distribution_embeddings(adata)


@pytest.fixture(scope="module")
def on_disk(tmp_path_factory):
    """The same small data in memory, in an .h5ad file and in a .zarr store (CSR)."""
    folder = tmp_path_factory.mktemp("backed")
    adata = small_sets()
    adata.X = sp.csr_matrix(adata.X)
    adata.write_h5ad(folder / "cells.h5ad")
    adata.write_zarr(folder / "cells.zarr")
    return adata, folder


@pytest.mark.parametrize("suffix", [".h5ad", ".zarr"])
def test_data_on_disk_trains_and_embeds_as_in_memory(on_disk, suffix):
    adata, folder = on_disk
    _, expected = _train_and_embed(adata.copy())
    lazy = gde.read_lazy(folder / f"cells{suffix}")
    assert backed.is_on_disk(lazy.X)
    model, emb = _train_and_embed(lazy)
    np.testing.assert_allclose(emb.loc[expected.index], expected, atol=1e-6)
    # generation reads the library sizes of the chosen cells from disk
    gen = model.sample(sets=["set_0"], adata=lazy, n_cells=20, seed=0)
    assert gen.n_obs == 20 and np.isfinite(np.asarray(gen.X.sum()))


def test_statistics_come_from_a_sample_but_every_cell_is_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(backed, "STATS_CELLS", 50)  # fewer than the 400-odd cells
    adata = small_sets()
    x = adata.X.astype(np.float32)
    x[-1, 0] += 0.5  # not a count, in the last cell, which the sample leaves out
    rows = backed.stats_rows(adata.n_obs, seed=0)
    assert len(rows) == 50 and adata.n_obs - 1 not in rows
    adata.X = sp.csr_matrix(x)
    adata.write_h5ad(tmp_path / "bad.h5ad")
    lazy = gde.read_lazy(tmp_path / "bad.h5ad")
    gde.GDEModel.setup_anndata(lazy, set_key="set")
    # the sample alone looks like counts; the scan of every cell finds the odd one
    with pytest.raises(ValueError, match=r"adata\.X contains non-integer values"):
        gde.GDEModel(lazy)


def test_a_subset_of_a_backed_file_says_how_to_register_it(on_disk):
    _, folder = on_disk
    lazy = gde.read_lazy(folder / "cells.h5ad")
    view = lazy[lazy.obs["set"].isin(["set_0", "set_1"])]
    with pytest.raises(ValueError, match=r"copy\(filename="):
        gde.GDEModel.setup_anndata(view, set_key="set")


def test_read_lazy_refuses_other_files_and_warns_on_dense_zarr(tmp_path):
    (tmp_path / "cells.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"\.h5ad files and \.zarr stores"):
        gde.read_lazy(tmp_path / "cells.csv")
    with pytest.raises(FileNotFoundError):
        gde.read_lazy(tmp_path / "missing.h5ad")
    dense = ad.AnnData(np.ones((5, 3), dtype=np.float32))
    dense.write_zarr(tmp_path / "dense.zarr")
    with pytest.warns(UserWarning, match="stored dense"):
        lazy = gde.read_lazy(tmp_path / "dense.zarr")
    assert isinstance(lazy.X, np.ndarray)
