"""Simulated perturbation screens: a control, single perturbations and combinations."""

from __future__ import annotations

import itertools

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from ._counts import nb_counts, row_proportions

CONTROL = "control"


def _program_effects(n_perturbed: int, n_programs: int, effect_size: float, rng) -> np.ndarray:
    """``(n_perturbed, n_programs)``: each perturbed gene drives one or two programs."""
    effects = np.zeros((n_perturbed, n_programs))
    for g in range(n_perturbed):
        hit = rng.choice(n_programs, size=1 + int(rng.random() < 0.4), replace=False)
        effects[g, hit] = (
            rng.choice([-1.0, 1.0], len(hit)) * effect_size * rng.uniform(0.5, 1.5, len(hit))
        )
    # a fifth of the perturbations have no effect beyond their own gene's knock-down
    effects[rng.random(n_perturbed) < 0.2] = 0.0
    return effects


def _combinations(effects: np.ndarray, n_combinations: int, rng) -> list[tuple[int, int]]:
    """Pairs of perturbed genes, half of them acting on a shared program (non-additive)."""
    pairs = list(itertools.combinations(range(len(effects)), 2))
    rng.shuffle(pairs)
    shared = [p for p in pairs if (np.abs(effects[list(p)]) > 0).all(0).any()]
    other = [p for p in pairs if p not in set(shared)]
    n_shared = min(len(shared), n_combinations // 2)
    return shared[:n_shared] + other[: n_combinations - n_shared]


def simulate_perturbations(
    n_genes: int = 1000,
    n_programs: int = 8,
    n_perturbed: int = 40,
    n_combinations: int = 40,
    n_cells_per_perturbation: int = 150,
    n_control_cells: int = 1000,
    n_states: int = 3,
    effect_size: float = 1.0,
    saturation: float = 1.2,
    penetrance: tuple[float, float] = (0.6, 1.0),
    knockdown: float = 2.0,
    n_features: int = 16,
    feature_noise: float = 0.3,
    held_out_fraction: float = 0.25,
    library_size: float = 3000.0,
    theta: float = 5.0,
    seed: int = 0,
) -> ad.AnnData:
    """Simulate a pooled perturbation screen with additive and epistatic combinations.

    Cells of a control population in ``n_states`` states (a cell cycle-like mixture)
    express ``n_genes`` genes; ``n_programs`` gene programs each move 4 % of the genes
    (log-fold changes ~ N(0, 1) per gene). Each of ``n_perturbed`` genes, when perturbed,
    knocks its own transcript down by ``knockdown`` (natural log, CRISPRi-like, 86 %) and
    pushes one or two programs by ``effect_size`` × U(0.5, 1.5) in log space (a fifth
    push none); a program's response saturates, ``h = s tanh(u / s)`` with ``s =
    saturation``. A perturbation acts in a random fraction ``U(penetrance)`` of its cells
    (the others look like control), so its cells form two populations whose means alone
    do not describe them. Combinations perturb two genes; half of them share a program,
    so their effects on that program saturate instead of adding (non-additive, labelled
    ``"non-additive"``), the others act on disjoint programs and add in log expression
    (``"additive"``).

    With the defaults (measured by ``benchmarks/perturbation.py``), a single perturbation
    changes the mean log1p expression of a median 1.5 % of genes (at most 3.4 %) by more
    than 0.5 (about 0.7 in log2), and its largest change is a median 1.3 (the knocked-down
    gene or a program gene). Genome-scale CRISPRi screens (Replogle et al., 2022) see a
    few per cent of genes change for their stronger hits and far fewer for most: these
    simulated effects sit at the strong end.

    Every perturbed gene has a feature vector (``n_features`` columns): a noisy random
    projection of its program effects, as gene embeddings or annotations would be; they
    let a model predict held-out genes it never saw perturbed.

    A fraction ``held_out_fraction`` of the single perturbations and of the combinations
    is held out (``obs['split']``), drawn at random: a held-out pair's genes may each have
    been seen alone in training or not.

    Parameters
    ----------
    n_genes, n_programs
        Genes and gene programs.
    n_perturbed, n_combinations
        Single perturbations and pairs.
    n_cells_per_perturbation, n_control_cells
        Cells per perturbation (single or pair) and control cells.
    n_states
        Cell states in every population.
    effect_size
        Program push of a perturbation, log scale.
    saturation
        Largest program response; smaller values make combinations less additive.
    penetrance
        Range of the fraction of a perturbation's cells in which it acts.
    knockdown
        Log-fold decrease of the perturbed gene's own transcript.
    n_features, feature_noise
        Size and noise of the gene feature table.
    held_out_fraction
        Share of single perturbations and of combinations held out.
    library_size, theta
        Mean counts per cell and negative binomial inverse dispersion.
    seed
        Random seed.

    Returns
    -------
    AnnData with raw counts (CSR, float32); ``obs['perturbation']`` (``"control"``, a
    gene, or ``"GENE_A+GENE_B"``), ``obs['kind']`` (control, single, additive,
    non-additive), ``obs['split']`` (train, held_out) and ``obs['state']``;
    ``uns['perturbation_simulation']`` with ``'features'`` (perturbed gene × feature),
    ``'true_delta'`` (perturbation × gene: the true change of mean log1p expression per
    10,000 counts against control, from 5,000 cells per group before count noise) and
    ``'params'``.

    Examples
    --------
    >>> adata = gde.datasets.simulate_perturbations(n_genes=200, n_perturbed=10)
    >>> adata.obs["kind"].value_counts()["single"]
    1500
    """
    if n_perturbed < 2 or n_programs < 1 or n_genes < n_perturbed:
        raise ValueError("Need n_perturbed >= 2, n_programs >= 1 and n_genes >= n_perturbed.")
    if not 0 < held_out_fraction < 1:
        raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}.")
    params = dict(locals())
    rng = np.random.default_rng(seed)
    genes = np.array([f"G{g:04d}" for g in range(n_genes)])
    base = rng.normal(0.0, 1.2, n_genes)
    states = np.zeros((n_states, n_genes))
    for k in range(n_states):
        states[k, rng.choice(n_genes, n_genes // 20, replace=False)] = rng.normal(0, 1.0)
    loadings = np.zeros((n_programs, n_genes))
    for p in range(n_programs):
        members = rng.choice(n_genes, max(2, n_genes // 25), replace=False)
        loadings[p, members] = rng.normal(0.0, 1.0, len(members))
    targets = rng.choice(n_genes, n_perturbed, replace=False)
    effects = _program_effects(n_perturbed, n_programs, effect_size, rng)
    reach = rng.uniform(*penetrance, n_perturbed)
    names = genes[targets]
    pairs = _combinations(effects, n_combinations, rng)
    gene_theta = theta * np.exp(rng.normal(0.0, 0.5, n_genes))

    held_single = set(
        rng.choice(n_perturbed, round(held_out_fraction * n_perturbed), replace=False)
    )
    n_held_pairs = round(held_out_fraction * len(pairs))
    held_pair = set(rng.choice(len(pairs), n_held_pairs, replace=False).tolist())

    groups = [(CONTROL, (), "control", "train", n_control_cells)]
    groups += [
        (
            names[g],
            (g,),
            "single",
            "held_out" if g in held_single else "train",
            n_cells_per_perturbation,
        )
        for g in range(n_perturbed)
    ]
    for i, (a, b) in enumerate(pairs):
        shared = bool((np.abs(effects[[a, b]]) > 0).all(0).any())
        groups.append(
            (
                f"{names[a]}+{names[b]}",
                (a, b),
                "non-additive" if shared else "additive",
                "held_out" if i in held_pair else "train",
                n_cells_per_perturbation,
            )
        )

    def log_rates(members, n):
        state = rng.integers(0, n_states, n)
        push = np.zeros((n, n_programs))
        own = np.zeros((n, n_genes))
        for g in members:
            acts = rng.random(n) < reach[g]
            push[acts] += effects[g]
            own[acts, targets[g]] -= knockdown
        h = saturation * np.tanh(push / saturation)
        noise = rng.normal(0.0, 0.15, (n, n_programs))
        return base + states[state] + (h + noise) @ loadings + own, state

    def mean_log1p(members, n=5000):
        lr, _ = log_rates(members, n)
        return np.log1p(row_proportions(lr) * 1e4).mean(0)

    blocks, obs = [], []
    for label, members, kind, split, n in groups:
        lr, state = log_rates(members, n)
        counts = nb_counts(lr, library_size, 0.25, gene_theta, rng).astype(np.float32)
        blocks.append(sparse.csr_matrix(counts))
        obs.append(
            pd.DataFrame(
                {
                    "perturbation": label,
                    "kind": kind,
                    "split": split,
                    "state": [f"state_{s}" for s in state],
                }
            )
        )
    obs = pd.concat(obs, ignore_index=True)
    obs.index = [f"cell_{i}" for i in range(len(obs))]
    for col in obs:
        obs[col] = pd.Categorical(obs[col])
    adata = ad.AnnData(sparse.vstack(blocks, format="csr"), obs=obs, var=pd.DataFrame(index=genes))

    control_mean = mean_log1p(())
    labels = [g[0] for g in groups[1:]]
    delta = np.stack([mean_log1p(g[1]) - control_mean for g in groups[1:]])
    projection = rng.normal(0.0, 1.0 / np.sqrt(n_programs), (n_programs, n_features))
    feats = effects @ projection + rng.normal(0.0, feature_noise, (n_perturbed, n_features))
    adata.uns["perturbation_simulation"] = {
        "features": pd.DataFrame(feats, index=names, columns=[f"f{i}" for i in range(n_features)]),
        "true_delta": pd.DataFrame(delta, index=labels, columns=genes),
        "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()},
    }
    return adata
