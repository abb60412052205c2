"""Lineage tracing: how much early-late information the simulated clones hold at most.

``benchmarks/lineage.py`` scores embeddings by the mutual information between each
held-out clone's day-2 and day-6 sets. This script asks what any embedding could reach on
the same data, by scoring, with the same estimator and the same held-out clones, two
oracle embeddings that no model of the expression could beat:

- **every day-2 cell's fate known**: each set's shares of the fates its cells drew
  (more than the data hold: an unprimed day-2 cell shows nothing of its fate);
- **the primed day-2 cells' fates known**: the fate shares of the cells that show their
  early program (``obs["primed"]``), as a perfect reader of the early program would see.
  Sets without a primed cell get the same shares as any other set with the same counts
  (zero), through a Jeffreys pseudo-count ``(n_f + 0.5) / (n + 2)``.

Day-6 sets are described the same way (every cell there shows its fate). Shares are
discrete, so a small Gaussian jitter (SD ``--jitter``) breaks the ties that the KSG
estimator cannot handle. The pseudobulk is scored in the same run as the reference the
issue's target is set against. Several simulator seeds, as the held-out clones are few.

    python benchmarks/lineage_ceiling.py            # full run (a few minutes)
    python benchmarks/lineage_ceiling.py --quick    # one seed, fewer clones
"""

from __future__ import annotations

import argparse
import platform
import warnings

import numpy as np
import pandas as pd
from default_training import command, write_results
from lineage import EARLY, score

import gde
from gde._anndata_utils import set_level_obs

PRIMED = "primed day-2 cells' fates known (oracle)"
EVERY = "every day-2 cell's fate known (oracle, more than the data hold)"


def fate_shares(obs: pd.DataFrame, keep: np.ndarray, sets: pd.Index) -> pd.DataFrame:
    """Per set, the Jeffreys-smoothed shares of the fates of the cells in ``keep``."""
    kept = obs[keep]
    counts = pd.crosstab(kept["set"].astype(str), kept["fate"].astype(str))
    counts = counts.reindex(index=sets, columns=sorted(obs["fate"].astype(str).unique()))
    counts = counts.fillna(0.0)
    return (counts + 0.5).div(counts.sum(1) + 0.5 * counts.shape[1], axis=0)


def run_seed(seed: int, n_clones: int, args) -> dict:
    adata = gde.datasets.simulate_lineage(n_clones=n_clones, seed=seed)
    gde.pp.make_sets(adata, ["clone", "time"])
    probs = adata.uns["lineage_simulation"]["fate_probabilities"]
    obs = set_level_obs(adata.obs, "set")
    obs.index = obs.index.astype(str)
    cells = adata.obs
    early = (cells["time"].astype(str) == EARLY).to_numpy()
    rng = np.random.default_rng(seed)
    embeddings = {
        EVERY: fate_shares(cells, np.ones(len(cells), bool), obs.index),
        PRIMED: fate_shares(cells, ~early | cells["primed"].to_numpy(), obs.index),
    }
    for key, emb in embeddings.items():
        embeddings[key] = emb + rng.normal(0.0, args.jitter, emb.shape)
    pseudobulk = gde.tl.pseudobulk_embedding(adata, set_key="set", n_comps=16, key_added=None)
    embeddings["pseudobulk"] = pseudobulk.set_axis(pseudobulk.index.astype(str))
    args.seed = seed
    return {k: score(v, obs, probs, args) for k, v in embeddings.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one seed, 60 clones")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--n-clones", type=int, default=300)
    parser.add_argument("--n-comps", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--n-permutations", type=int, default=200)
    parser.add_argument("--jitter", type=float, default=1e-3)
    parser.add_argument("--out", default="benchmarks/results/lineage_ceiling")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.n_clones, args.n_permutations = [0], 60, 20
    warnings.filterwarnings("ignore")
    runs = {seed: run_seed(seed, args.n_clones, args) for seed in args.seeds}
    methods = list(runs[args.seeds[0]])
    keys = [k for k in runs[args.seeds[0]][methods[0]] if k.startswith(("MI", "fate AUC"))]
    mean = {
        m: {k: round(float(np.mean([runs[s][m][k] for s in runs])), 3) for k in keys}
        for m in methods
    }
    results = {
        "platform": f"{platform.machine()} CPU",
        "command": command("benchmarks/lineage_ceiling.py", argv),
        "n_clones": args.n_clones,
        "jitter": args.jitter,
        "mean over seeds": mean,
        "per seed": {str(s): r for s, r in runs.items()},
    }
    write_results(results, args.out, markdown)


def markdown(results: dict) -> str:
    mean = results["mean over seeds"]
    keys = list(next(iter(mean.values())))
    lines = [
        "# Lineage tracing: the most early-late information the simulated clones hold",
        "",
        f"Device: {results['platform']}. Command: `{results['command']}`.",
        "",
        f"`simulate_lineage(n_clones={results['n_clones']})`, held-out clones, the estimator "
        "and scores of `benchmarks/lineage.py`; mean over the simulator seeds "
        f"{', '.join(results['per seed'])}. Oracle shares jittered by "
        f"N(0, {results['jitter']}²).",
        "",
        "| embedding | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
        *[f"| {m} | " + " | ".join(f"{v[k]:.3f}" for k in keys) + " |" for m, v in mean.items()],
        "",
        "Per seed, MI bits (8 PCs): "
        + "; ".join(
            f"seed {s}: "
            + ", ".join(f"{m.split(' (')[0]} {r[m]['MI bits (8 PCs)']:.3f}" for m in r)
            for s, r in results["per seed"].items()
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
