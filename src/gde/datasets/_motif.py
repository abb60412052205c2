"""Sets of DNA sequences that differ in ways k-mer counts see and in ways they miss."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

#: how sets may differ; each is the probability of one binary choice per sequence
FACTORS = ("composition", "cooccurrence", "order", "spacing", "length")
#: the factors that leave a set's mean k-mer frequencies (nearly) unchanged
KMER_BLIND = ("cooccurrence", "order", "spacing")
_MOTIFS = {"composition": (("TATAAT", "GGCGCC"), ("CACGTG", "TTGACA"))}
_SHORT, _LONG = (30, 40), (60, 80)
_NEAR, _FAR = (1, 3), (12, 16)


def _sequence(rng: np.random.Generator, p: dict[str, float]) -> tuple[str, str]:
    """One sequence under the set's factor probabilities, and its motif layout."""
    pair = _MOTIFS["composition"][int(rng.random() < p["composition"])]
    if rng.random() < p["cooccurrence"]:  # both motifs in this sequence
        first, second = pair if rng.random() < p["order"] else pair[::-1]
        layout = "pair"
    else:  # one motif, twice: the same motif counts as the pair over a set
        first = second = pair[int(rng.random() < 0.5)]
        layout = "double"
    gap = _NEAR if rng.random() < p["spacing"] else _FAR
    block = first + "".join(rng.choice(list("ACGT"), rng.integers(gap[0], gap[1] + 1))) + second
    lengths = _LONG if rng.random() < p["length"] else _SHORT
    length = max(int(rng.integers(lengths[0], lengths[1] + 1)), len(block))
    background = "".join(rng.choice(list("ACGT"), length - len(block)))
    start = int(rng.integers(0, len(background) + 1))
    return background[:start] + block + background[start:], layout


def motif_sets(
    n_sets: int = 60,
    n_sequences_per_set: int | tuple[int, int] = (100, 300),
    factors: str | tuple[str, ...] = FACTORS,
    held_out_fraction: float = 0.25,
    seed: int = 0,
) -> ad.AnnData:
    """Sets of DNA sequences carrying two motifs, differing in how they carry them.

    Every sequence is random background (uniform A, C, G, T) with one block of two
    6-letter motifs separated by a random gap, placed at a random position. Each set has
    one probability per *factor*, and every sequence of the set makes each factor's
    binary choice with that probability:

    - ``"composition"``: which pair of motifs, ``TATAAT``/``GGCGCC`` or
      ``CACGTG``/``TTGACA`` (k-mer counts see it);
    - ``"cooccurrence"``: both motifs of the pair in the sequence, or one of them
      twice; over a set, each motif is as frequent either way, so mean k-mer
      frequencies do not see it (only the few k-mers that span the two motifs change);
    - ``"order"``: which motif of the pair comes first (k-mer blind);
    - ``"spacing"``: a gap of 1-3 or of 12-16 letters between the motifs (k-mer blind);
    - ``"length"``: 30-40 or 60-80 letters (k-mer frequencies see it only through the
      motifs' share of the letters).

    Factors not in ``factors`` stay at probability 0.5 (``"cooccurrence"`` at 1.0 when
    ``"order"`` or ``"spacing"`` varies, so that the pair is there to be ordered and
    spaced); those in ``factors`` are drawn uniformly in [0, 1] per set.

    Ground truth: the distance between sets ``s`` and ``t`` is
    ``sum_f |p_s[f] - p_t[f]|`` over the varying factors. Each term is the total
    variation distance between the two sets' distributions of that factor's choice, so
    the sum is the total variation between the sets' distributions of the factor
    vector (each factor chosen independently). It ranks set pairs by how differently
    their sequences are made.

    Parameters
    ----------
    n_sets
        Number of sets.
    n_sequences_per_set
        Sequences per set, or a ``(low, high)`` range to draw each set's size from.
    factors
        Factors that vary between sets (any of ``gde.datasets.motif_sets`` factors:
        ``"composition"``, ``"cooccurrence"``, ``"order"``, ``"spacing"``,
        ``"length"``), or one of them as a string.
    held_out_fraction
        Fraction of sets marked ``"held_out"`` in ``obs['split']``.
    seed
        Random seed.

    Returns
    -------
    AnnData with one row per sequence and an empty ``X``: ``obs['sequence']`` (strings),
    ``obs['set']``, ``obs['split']`` (``"train"``/``"held_out"``, per set) and
    ``obs['layout']`` (``"pair"`` or ``"double"``); ``uns['motif_sets']`` with
    ``'sets'`` (each set's factor probabilities and split), ``'distance'`` (the ground
    truth above, sets × sets), ``'factors'`` and ``'params'``.

    Examples
    --------
    >>> adata = gde.datasets.motif_sets(n_sets=20, factors=("cooccurrence", "spacing"))
    >>> adata.uns["motif_sets"]["distance"].iloc[:3, :3]
    """
    factors = (factors,) if isinstance(factors, str) else tuple(factors)
    unknown = [f for f in factors if f not in FACTORS]
    if unknown or not factors:
        raise ValueError(f"factors must be a non-empty subset of {FACTORS}; got {factors}.")
    if n_sets < 2 or not 0 <= held_out_fraction < 1:
        raise ValueError("Need n_sets >= 2 and 0 <= held_out_fraction < 1.")
    low, high = (
        (n_sequences_per_set, n_sequences_per_set)
        if np.isscalar(n_sequences_per_set)
        else n_sequences_per_set
    )
    if low < 1 or high < low:
        raise ValueError(f"n_sequences_per_set must be >= 1, got {n_sequences_per_set}.")
    params = {
        "n_sets": n_sets,
        "n_sequences_per_set": [int(low), int(high)],
        "factors": list(factors),
        "held_out_fraction": held_out_fraction,
        "seed": seed,
    }
    rng = np.random.default_rng(seed)
    names = [f"set_{i:0{len(str(n_sets - 1))}d}" for i in range(n_sets)]
    fixed = {f: 0.5 for f in FACTORS}
    if "order" in factors or "spacing" in factors:
        fixed["cooccurrence"] = 1.0
    probs = pd.DataFrame(
        {f: rng.uniform(0, 1, n_sets) if f in factors else fixed[f] for f in FACTORS},
        index=pd.Index(names, name="set"),
    )
    n_held = round(held_out_fraction * n_sets)
    held = set(rng.choice(names, n_held, replace=False)) if n_held else set()
    probs["split"] = ["held_out" if s in held else "train" for s in names]
    rows = []
    for name in names:
        p = probs.loc[name, list(FACTORS)].to_dict()
        for _ in range(int(rng.integers(low, high + 1))):
            seq, layout = _sequence(rng, p)
            rows.append((seq, name, probs.loc[name, "split"], layout))
    obs = pd.DataFrame(rows, columns=["sequence", "set", "split", "layout"])
    obs.index = [f"seq_{i}" for i in range(len(obs))]
    for col in ("set", "split", "layout"):
        obs[col] = obs[col].astype("category")
    varying = probs[list(factors)].to_numpy()
    distance = np.abs(varying[:, None, :] - varying[None, :, :]).sum(-1)
    adata = ad.AnnData(np.zeros((len(obs), 0), dtype=np.float32), obs=obs)
    adata.uns["motif_sets"] = {
        "sets": probs,
        "distance": pd.DataFrame(distance, index=probs.index, columns=probs.index),
        "factors": list(factors),
        "params": params,
    }
    return adata
