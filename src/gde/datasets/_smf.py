"""Real single-molecule footprinting reads (nanopore methylation calls), from smftools."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
from anndata import AnnData, read_h5ad

from ._wheel import cached_file

_PACKAGE = "smftools==2.21.0"
_DATASETS = {
    # name: (member of the wheel, obs columns whose combination names a set, reads)
    "nkg2a": (
        "smftools/datasets/F1_hybrid_NKG2A_enhander_promoter_GpC_conversion_SMF.h5ad.gz",
        ("Sample", "Reference"),
        7894,
    ),
    "m6a": ("smftools/datasets/dCas9_m6A_invitro_kinetics.h5ad.gz", ("Sample_names",), 24490),
}


def smf_reads(
    dataset: str = "nkg2a",
    path: str | os.PathLike | None = None,
    *,
    min_call_rate: float = 0.1,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> AnnData:
    """Single-molecule methylation reads shipped with smftools: reads × positions.

    Each row is one nanopore read over a fixed region, each column a position; values are
    1 (methylated, i.e. accessible to the enzyme), 0 (not) or NaN (no call at that
    position in that read). Ready for
    ``gde.seq.SeqGDEModel.setup_anndata(adata, set_key="sample")``.

    - ``"nkg2a"``: GpC methylation footprints of the NKG2A enhancer-promoter in F1
      hybrid mouse NK cells (Kissiov & McKenna 2025): 7,894 reads from 3 samples, each
      read assigned to one of the 2 parental alleles (``6B6`` / ``6BALB_cJ``); a set is
      a sample's allele, 6 sets.
    - ``"m6a"``: in-vitro dCas9 footprints marked by the m6A methyltransferase Hia5
      (smftools' dCas9 kinetics data): 24,490 reads in 3 conditions (15 and 30 minutes
      of Hia5, and 30 minutes without it); a set is a condition.

    The files (MIT licence) ship inside the ``smftools`` 2.21.0 wheel on PyPI; on first
    use they are fetched with ``pip download`` and cached in :func:`data_dir`.

    Parameters
    ----------
    dataset
        ``"nkg2a"`` or ``"m6a"``.
    path
        An existing copy of the file (the ``.h5ad.gz`` from the wheel, plain HDF5).
    min_call_rate
        Keep only the positions where at least this fraction of reads has a call (in the
        NKG2A data most positions are not GpC sites and never have one); 0 keeps all.
    cache_dir
        Cache folder to read from and download to.
    download
        Fetch the file if it is not cached; ``False`` raises ``FileNotFoundError``.

    Returns
    -------
    AnnData with the calls in ``X`` (dense float32, NaN for no call), positions as
    ``var_names`` (with ``var['call_rate']``), unique read names, and ``obs['sample']``
    naming each read's set next to the file's own columns.
    """
    if dataset not in _DATASETS:
        raise ValueError(f"dataset must be one of {sorted(_DATASETS)}, got {dataset!r}.")
    if not 0 <= min_call_rate < 1:
        raise ValueError(f"min_call_rate must be in [0, 1), got {min_call_rate}.")
    member, set_columns, n_reads = _DATASETS[dataset]
    path = cached_file(path, f"smftools_{dataset}.h5ad", _PACKAGE, member, cache_dir, download)
    with warnings.catch_warnings():  # read names repeat in the file
        warnings.filterwarnings("ignore", message="Observation names are not unique")
        adata = read_h5ad(path)
    if adata.n_obs != n_reads or not set(set_columns) <= set(adata.obs.columns):
        raise ValueError(
            f"'{path}' is not the expected file ({n_reads} reads with obs columns "
            f"{list(set_columns)}); got {adata.n_obs} reads. Delete it to download it again."
        )
    adata.obs_names_make_unique()
    x = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    x = x.astype(np.float32)
    call_rate = (~np.isnan(x)).mean(axis=0)
    keep = call_rate >= min_call_rate
    out = AnnData(x[:, keep], obs=adata.obs.copy(), var=pd.DataFrame(index=adata.var_names[keep]))
    out.var["call_rate"] = call_rate[keep]
    label = out.obs[set_columns[0]].astype(str)
    for col in set_columns[1:]:
        label = label + "/" + out.obs[col].astype(str).str.replace("_5mC_top", "", regex=False)
    out.obs["sample"] = pd.Categorical(label)
    return out
