"""Baselines for sets of sequences: k-mer pseudobulk and per-position read rates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from gde._anndata_utils import check_set_column, get_data, group_membership, set_codes
from gde._sequences import check_sequence_column, kmer_profiles, read_tokens

from ._pseudobulk import set_mean_embedding, set_means


def kmer_embedding(
    adata: AnnData,
    *,
    set_key: str,
    sequence_key: str,
    ks: Sequence[int] = (1, 2, 3),
    alphabet: str | None = None,
    n_comps: int = 50,
    key_added: str | None = "X_kmer",
    copy: bool = False,
) -> pd.DataFrame | AnnData | None:
    """Embed each set by the PCA of its sequences' mean k-mer frequencies.

    Each sequence is described by the frequencies of its k-mers for each k in ``ks``
    (its counts divided by its number of k-mers); each set is the mean over its
    sequences; the set means are centred and projected on their top principal
    components. The k-mer pseudobulk a sequence-set embedding has to beat.

    Parameters
    ----------
    adata
        One row per sequence.
    set_key
        Column of ``adata.obs`` naming each sequence's set.
    sequence_key
        Column of ``adata.obs`` with the sequences (strings).
    ks
        k-mer lengths.
    alphabet
        ``"dna"``, ``"rna"``, ``"protein"`` or a string of letters; inferred when ``None``.
    n_comps
        Number of principal components (at most ``n_sets - 1`` are kept).
    key_added
        Write the per-set table to ``adata.uns[key_added]`` and each sequence's set
        embedding to ``adata.obsm[key_added]``; ``None`` writes nothing.
    copy
        Return a modified copy of ``adata`` instead of writing in place.

    Returns
    -------
    The per-set embedding (``copy=False``), or the modified copy (``copy=True``).
    """
    check_set_column(adata, set_key)
    sequences = check_sequence_column(adata, sequence_key)
    if copy:
        adata = adata.copy()
    freqs, _ = kmer_profiles(sequences, tuple(ks), alphabet)
    codes, names = set_codes(adata.obs[set_key])
    means = set_means(freqs, codes, len(names))
    params = {"set_key": set_key, "sequence_key": sequence_key, "ks": list(ks)}
    return set_mean_embedding(
        adata, means, codes, names, set_key, n_comps, "kmer", key_added, params, copy
    )


def position_rate_embedding(
    adata: AnnData,
    *,
    set_key: str,
    layer: str | None = None,
    n_comps: int = 50,
    key_added: str | None = "X_position_rate",
    copy: bool = False,
) -> pd.DataFrame | AnnData | None:
    """Embed each set of aligned reads by the PCA of its per-position rates of 1 calls.

    The rate at a position is the mean of the 0/1 calls of the set's reads that cover it
    (NaN: no call); positions a set does not cover take the rate over all reads. The
    per-position (e.g. methylation) rate vector is the baseline for sets of reads.

    Parameters
    ----------
    adata
        Reads × positions, 0/1 calls with NaN where there is no call.
    set_key
        Column of ``adata.obs`` naming each read's set.
    layer
        Layer with the calls; ``None`` uses ``adata.X``.
    n_comps, key_added, copy
        As in :func:`kmer_embedding`.

    Returns
    -------
    The per-set embedding (``copy=False``), or the modified copy (``copy=True``).
    """
    check_set_column(adata, set_key)
    x = get_data(adata, layer=layer)
    read_tokens(x, "adata.X" if layer is None else f"adata.layers['{layer}']")  # checks
    if copy:
        adata = adata.copy()
    x = np.asarray(x, dtype=np.float64)
    seen = ~np.isnan(x)
    codes, names = set_codes(adata.obs[set_key])
    member = group_membership(codes, len(names))
    calls = np.asarray(member @ np.nan_to_num(x))
    covered = np.asarray(member @ seen.astype(np.float64))
    overall = np.nanmean(np.where(seen, x, np.nan), axis=0)
    overall = np.nan_to_num(overall, nan=0.0)
    rates = np.where(covered > 0, calls / np.maximum(covered, 1), overall)
    params = {"set_key": set_key, "layer": layer}
    return set_mean_embedding(
        adata, rates, codes, names, set_key, n_comps, "rate", key_added, params, copy
    )
