"""The real CITE-seq data set: fetched into a cache folder, or skipped with a reason."""

import numpy as np
import pytest

import gde


@pytest.fixture(scope="module")
def covid_path():
    folder = gde.datasets.data_dir()
    try:
        gde.datasets.liu_covid(cache_dir=folder)
    except OSError as err:  # no network and no cached copy
        pytest.skip(f"the COVID-19 CITE-seq file cannot be had here: {err}")
    return folder / "liu_covid_citeseq.h5ad"


def test_liu_covid_loads(covid_path):
    adata = gde.datasets.liu_covid(path=covid_path)
    assert adata.shape == (30_534, 1_192)
    assert adata.var_names.is_unique
    assert (adata.var["feature_types"] == "Antibody Capture").sum() == 192
    x = adata.X[:2000].toarray()
    assert (x >= 0).all() and np.array_equal(x, np.round(x))  # raw counts
    obs = adata.obs
    assert obs["sample_id"].nunique() == 63 and obs["Donor"].nunique() == 43
    assert obs["Batch"].nunique() == 3
    # samples are nested in donors and batches
    assert (obs.groupby("sample_id", observed=True)["Donor"].nunique() == 1).all()
    assert (obs.groupby("sample_id", observed=True)["Batch"].nunique() == 1).all()


def test_liu_covid_mudata(covid_path):
    mdata = gde.datasets.liu_covid(path=covid_path, as_mudata=True)
    assert mdata["rna"].shape == (30_534, 1_000) and mdata["prot"].shape == (30_534, 192)
    assert "sample_id" in mdata.obs and "Batch" in mdata.obs


def test_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GDE_DATA_DIR", str(tmp_path / "env"))
    assert gde.datasets.data_dir() == tmp_path / "env"
    assert gde.datasets.data_dir(tmp_path / "arg") == tmp_path / "arg"
    with pytest.raises(FileNotFoundError, match="download=True"):
        gde.datasets.liu_covid(download=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gde.datasets.liu_covid(path=tmp_path / "missing.h5ad")


def test_wrong_file_is_refused(tmp_path):
    gde.datasets.simulate_sets(n_sets=3, n_genes=10).write_h5ad(tmp_path / "other.h5ad")
    with pytest.raises(ValueError, match="not the expected file"):
        gde.datasets.liu_covid(path=tmp_path / "other.h5ad")


@pytest.mark.parametrize(
    ("name", "shape", "n_sets"), [("nkg2a", (7_894, 136), 6), ("m6a", (24_490, 670), 3)]
)
def test_smf_reads_load(name, shape, n_sets):
    try:
        reads = gde.datasets.smf_reads(name)
    except OSError as err:  # no network and no cached copy
        pytest.skip(f"the smftools reads cannot be had here: {err}")
    assert reads.shape == shape and reads.obs_names.is_unique
    values = reads.X[~np.isnan(reads.X)]
    assert set(np.unique(values)) == {0.0, 1.0}
    assert reads.obs["sample"].nunique() == n_sets
    assert (reads.var["call_rate"] >= 0.1).all()
    all_positions = gde.datasets.smf_reads(name, min_call_rate=0.0)
    assert all_positions.n_vars >= reads.n_vars
    with pytest.raises(ValueError, match="dataset must be one of"):
        gde.datasets.smf_reads("larry")
