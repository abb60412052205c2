"""Sets of sequences and of aligned reads compared: k-mer spectra, lengths, calls."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from gde._sequences import kmer_profiles, resolve_alphabet


def _spectra(a: Sequence[str], b: Sequence[str], ks: tuple[int, ...], alphabet: str | None):
    both = pd.Series([*a, *b], dtype=object)
    resolved = resolve_alphabet(alphabet, both)
    letters = resolved.letters
    freqs, lengths = kmer_profiles(both, ks, resolved)
    n = len(a)
    blocks = np.cumsum([0] + [len(letters) ** k for k in ks])
    out = []
    for k, lo, hi in zip(ks, blocks[:-1], blocks[1:], strict=True):
        n_kmers = np.clip(lengths - k + 1, 0, None)[:, None]  # weight rows by their k-mers
        counts = freqs[:, lo:hi] * n_kmers
        pa, pb = counts[:n].sum(0), counts[n:].sum(0)
        out.append((pa / max(pa.sum(), 1.0), pb / max(pb.sum(), 1.0)))
    return out


def kmer_spectrum_distance(
    a: Sequence[str],
    b: Sequence[str],
    ks: Sequence[int] = (1, 2, 3),
    alphabet: str | None = None,
) -> float:
    """Distance between the k-mer spectra of two sets of sequences (0 to 1).

    For each k, the spectrum of a set is the frequency of every k-mer among all the
    k-mers of its sequences; the distance is the total variation between the two
    spectra (half their L1 distance), averaged over ``ks``. 0: the same k-mer
    frequencies; 1: no k-mer in common.

    Parameters
    ----------
    a, b
        Sequences (strings).
    ks
        k-mer lengths.
    alphabet
        ``"dna"``, ``"rna"``, ``"protein"`` or a string of letters; inferred from both
        sets when ``None``.
    """
    if len(a) == 0 or len(b) == 0:
        raise ValueError("Both sets need at least one sequence.")
    pairs = _spectra(list(a), list(b), tuple(ks), alphabet)
    return float(np.mean([0.5 * np.abs(pa - pb).sum() for pa, pb in pairs]))


def length_distance(a: Sequence[str], b: Sequence[str]) -> float:
    """1-Wasserstein distance between the length distributions of two sets, in letters."""
    if len(a) == 0 or len(b) == 0:
        raise ValueError("Both sets need at least one sequence.")
    return float(wasserstein_distance([len(s) for s in a], [len(s) for s in b]))


def _reads(x, name: str) -> np.ndarray:
    x = np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a reads × positions matrix, got shape {x.shape}.")
    return x


def position_rate_agreement(reads_a, reads_b, min_reads: int = 5) -> float:
    """Pearson r between two read sets' per-position rates of 1 calls (e.g. methylation).

    The rate at a position is the mean of the 0/1 calls of the reads that cover it (NaN:
    no call); positions covered by fewer than ``min_reads`` reads in either set are left
    out.

    Parameters
    ----------
    reads_a, reads_b
        Reads × positions matrices over the same positions (0/1, NaN for no call).
    min_reads
        Least number of calls at a position, in each set.
    """
    a, b = _reads(reads_a, "reads_a"), _reads(reads_b, "reads_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"The read sets have {a.shape[1]} and {b.shape[1]} positions.")
    covered = ((~np.isnan(a)).sum(0) >= min_reads) & ((~np.isnan(b)).sum(0) >= min_reads)
    if covered.sum() < 3:
        raise ValueError(f"Fewer than 3 positions have {min_reads} calls in both sets.")
    rate_a = np.nanmean(a[:, covered], axis=0)
    rate_b = np.nanmean(b[:, covered], axis=0)
    return float(np.corrcoef(rate_a, rate_b)[0, 1])


def co_methylation(reads, min_reads: int = 10) -> np.ndarray:
    """Pearson correlation of the calls at every pair of positions, over the reads.

    Each pair uses the reads with calls at both positions; pairs with fewer than
    ``min_reads`` such reads, or no variation, are NaN. Returns ``(n_pos, n_pos)``.
    """
    x = _reads(reads, "reads")
    seen = (~np.isnan(x)).astype(np.float64)
    v = np.nan_to_num(x)
    n = seen.T @ seen  # reads with calls at both positions
    sx = v.T @ seen  # sum of calls at i over reads seen at j
    sxy = v.T @ v
    sxx = (v * v).T @ seen
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy / n - (sx / n) * (sx.T / n)
        var_i = sxx / n - (sx / n) ** 2
        corr = cov / np.sqrt(var_i * var_i.T)
    corr[(n < min_reads) | ~np.isfinite(corr)] = np.nan
    return corr


def co_methylation_agreement(reads_a, reads_b, min_reads: int = 10) -> float:
    """Pearson r between two read sets' pairwise co-methylation (:func:`co_methylation`).

    Compares the correlations of calls at every pair of distinct positions where both
    sets have ``min_reads`` reads with calls at both.
    """
    ca, cb = co_methylation(reads_a, min_reads), co_methylation(reads_b, min_reads)
    if ca.shape != cb.shape:
        raise ValueError(f"The read sets have {ca.shape[0]} and {cb.shape[0]} positions.")
    upper = np.triu(np.ones(ca.shape, dtype=bool), k=1)
    ok = upper & np.isfinite(ca) & np.isfinite(cb)
    if ok.sum() < 3:
        raise ValueError(f"Fewer than 3 position pairs have {min_reads} shared reads in both.")
    return float(np.corrcoef(ca[ok], cb[ok])[0, 1])
