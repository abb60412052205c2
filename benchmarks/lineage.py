"""Lineage tracing: early-late mutual information and fate prediction from clone embeddings.

Data: ``gde.datasets.simulate_lineage`` (clones with LARRY's fate biases and clone
sizes, three time points; the fate shows weakly at day 2 through an early gene program
in half the cells, strongly at day 6 through a late one). Each clone at each time point
is a set (``gde.pp.make_sets``). ``GDEModel`` trains with its default ``train()`` on the
training clones (all time points); every embedding is then scored on the held-out
clones, which no model saw:

- mutual information (KSG, k = 3, Chebyshev, bits) between each clone's day-2 and day-6
  embedding, each reduced to the same number of principal components (the estimator's
  bias depends on dimension), with a permutation p-value;
- fate prediction from the day-2 embedding: cross-validated accuracy and one-vs-rest AUC
  of each clone's most likely fate, and R² of the true fate probabilities (ridge,
  cross-validated) — the ground truth the mutual information stands for;
- baselines in the same run: pseudobulk (PCA of set means), the moment embedding (mean
  and SD of each set's cells on the top principal components) and Wasserstein Wormhole
  where ``wassersteinwormhole`` is installed; the true fate probabilities give the
  ceiling of fate prediction.

Also the estimator's own checks: KSG against the closed form of correlated Gaussians
(2,000 samples) and the permutation null on independent data.

    python benchmarks/lineage.py            # full run
    python benchmarks/lineage.py --quick    # minutes; every step runs
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np
import pandas as pd
import scvi
import torch
from anndata import AnnData
from default_training import command, train_default, write_results
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_predict

import gde
from gde._anndata_utils import log_normalize, set_codes
from gde._pca import principal_components, project
from gde.tl._pseudobulk import set_means

EARLY, LATE = "day 2", "day 6"
N_PCS = 8  # cell-level PCs behind the moment embedding and Wormhole's point clouds


def estimator_checks(quick: bool) -> dict:
    """KSG against closed-form Gaussian MI; calibration of the permutation null."""
    ksg = gde.metrics.ksg_mutual_information
    rows = {}
    for rho in (0.3, 0.6, 0.9):
        truth = -0.5 * np.log2(1 - rho**2)
        est = []
        for s in range(3 if quick else 10):
            z = np.random.default_rng(s).multivariate_normal([0, 0], [[1, rho], [rho, 1]], 2000)
            est.append(ksg(z[:, 0], z[:, 1]))
        err = np.asarray(est) - truth
        rows[f"rho={rho}"] = {
            "closed form bits": round(truth, 4),
            "mean error": round(float(err.mean()), 4),
            "largest |error|": round(float(np.abs(err).max()), 4),
        }
    rng = np.random.default_rng(0)
    p = np.array(
        [
            gde.metrics.mutual_information_test(
                rng.normal(size=(100, 2)), rng.normal(size=(100, 2)), n_permutations=19, seed=i
            )["p_value"]
            for i in range(50 if quick else 400)
        ]
    )
    null = {
        "datasets": len(p),
        "share p <= 0.05": float((p <= 0.05).mean()),
        "share p <= 0.2": float((p <= 0.2).mean()),
    }
    return {"gaussians (2,000 samples, k=3)": rows, "null on independent data": null}


def moment_embedding(adata, set_key: str) -> pd.DataFrame:
    """Each set's mean and SD on the top principal components of log-normalised cells."""
    x = log_normalize(adata.X)
    coords = project(x, *principal_components(x, N_PCS))
    codes, names = set_codes(adata.obs[set_key])
    mean = set_means(coords, codes, len(names))
    sd = np.sqrt(np.maximum(set_means(coords**2, codes, len(names)) - mean**2, 0))
    cols = [f"mean_{i}" for i in range(N_PCS)] + [f"sd_{i}" for i in range(N_PCS)]
    return pd.DataFrame(np.hstack([mean, sd]), index=names.astype(str), columns=cols)


def wormhole_embedding(adata, train_sets, set_key: str, n_latent: int, steps: int, seed):
    """Wasserstein Wormhole on each set's cells in the top PCs (optional dependency)."""
    import jax
    from wassersteinwormhole import Wormhole

    x = log_normalize(adata.X)
    coords = project(x, *principal_components(x, N_PCS)).astype(np.float32)
    labels = adata.obs[set_key].astype(str).to_numpy()
    names = pd.unique(labels)
    clouds = {n: coords[labels == n] for n in names}
    model = Wormhole(
        point_clouds=[clouds[n] for n in train_sets],
        point_clouds_test=[clouds[n] for n in names],
        emb_dim=n_latent,
        num_layers=2,
        mlp_dim=128,
        dist_func_enc="W2",
        dist_func_dec="S2",
        num_particles_output=64,
        num_sinkhorn_iter=100,
    )
    model.train(
        training_steps=steps,
        batch_size=16,
        shape_sample=64,
        verbose=max(steps, 1),
        key=jax.random.key(seed),
    )
    enc = np.asarray(model.encode(model.point_clouds_test, model.weights_test))
    return pd.DataFrame(enc, index=names)


def fate_r2(x: np.ndarray, probs: np.ndarray, seed: int) -> float:
    """Mean cross-validated R² of each fate's true probability from the embedding."""
    cv = KFold(5, shuffle=True, random_state=seed)
    pred = cross_val_predict(RidgeCV(alphas=np.logspace(-3, 3, 13)), x, probs, cv=cv)
    ss = ((probs - probs.mean(0)) ** 2).sum(0)
    return float(np.mean(1 - ((probs - pred) ** 2).sum(0) / ss))


def score(emb: pd.DataFrame, obs: pd.DataFrame, probs: pd.DataFrame, args) -> dict:
    """MI and fate prediction on the held-out clones, from a per-set embedding table."""
    held = obs.index[obs["split"] == "held_out"]
    sets = AnnData(X=emb.loc[held].to_numpy(np.float32), obs=obs.loc[held].copy())
    sets.obsm["emb"] = sets.X.copy()
    out = {}
    for n_comps in args.n_comps:
        gde.tl.clone_information(
            sets,
            early=EARLY,
            late=LATE,
            use_rep="emb",
            fate_key="clone_fate",
            n_comps=n_comps,
            n_permutations=args.n_permutations,
            seed=args.seed,
        )
        r = sets.uns["clone_information"]
        out[f"MI bits ({n_comps} PCs)"] = round(r["mi_bits"], 3)
        out[f"p ({n_comps} PCs)"] = round(r["p_value"], 4)
        out[f"fate AUC ({n_comps} PCs)"] = round(r["fate_auc"], 3)
        out[f"fate accuracy ({n_comps} PCs)"] = round(r["fate_accuracy"], 3)
    early = sets.obs["time"].astype(str) == EARLY
    clones = sets.obs.loc[early, "clone"].astype(str)
    x = sets.obsm["emb"][early.to_numpy()]
    out["fate probabilities R² (day 2)"] = round(
        fate_r2(x, probs.loc[clones].to_numpy(), args.seed), 3
    )
    out["n held-out clones"] = int(r["n_clones"])
    out["fate majority share"] = round(r["fate_majority_share"], 3)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small run, every step runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-clones", type=int, default=300)
    parser.add_argument("--n-comps", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--n-permutations", type=int, default=200)
    parser.add_argument("--max-steps", type=int, default=None, help="default: train()'s own")
    parser.add_argument("--wormhole-steps", type=int, default=2000)
    parser.add_argument("--out", default="benchmarks/results/lineage")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_clones, args.max_steps, args.n_permutations = 60, args.max_steps or 20, 20
        args.wormhole_steps = 20
    warnings.filterwarnings("ignore")
    scvi.settings.seed = args.seed
    results = {
        "platform": f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
        "command": command("benchmarks/lineage.py", argv),
        "estimator": estimator_checks(args.quick),
    }
    adata = gde.datasets.simulate_lineage(n_clones=args.n_clones, seed=args.seed)
    gde.pp.make_sets(adata, ["clone", "time"])
    probs = adata.uns["lineage_simulation"]["fate_probabilities"]
    obs = gde._anndata_utils.set_level_obs(adata.obs, "set")
    results["data"] = {
        "cells": adata.n_obs,
        "clones": args.n_clones,
        "sets": len(obs),
        "cells per set at day 2 (median, max)": [
            int(obs.loc[obs["time"] == EARLY, "n_cells"].median()),
            int(obs.loc[obs["time"] == EARLY, "n_cells"].max()),
        ],
        "params": adata.uns["lineage_simulation"]["params"],
    }
    train = adata[adata.obs["split"] == "train"].copy()
    gde.GDEModel.setup_anndata(train, set_key="set")
    model = gde.GDEModel(train)
    fit, _ = train_default(model, args.max_steps, "cells")
    embeddings = {"gde": model.get_distribution_embeddings(adata, key_added=None)}
    n_latent = embeddings["gde"].shape[1]
    embeddings["pseudobulk"] = gde.tl.pseudobulk_embedding(
        adata, set_key="set", n_comps=16, key_added=None
    )
    embeddings["moment embedding"] = moment_embedding(adata, "set")
    rows = {}
    try:
        start = time.perf_counter()
        train_sets = list(obs.index[obs["split"] == "train"])
        embeddings["Wasserstein Wormhole"] = wormhole_embedding(
            adata, train_sets, "set", 16, args.wormhole_steps, args.seed
        )
        rows["Wasserstein Wormhole"] = {"train_seconds": round(time.perf_counter() - start, 1)}
    except ImportError as err:
        rows["Wasserstein Wormhole"] = {"skipped": f"not installed ({err})"}
    embeddings["true fate probabilities (ceiling)"] = probs.loc[obs["clone"].astype(str)].set_axis(
        obs.index
    )
    for label, emb in embeddings.items():
        emb.index = emb.index.astype(str)
        rows[label] = {**rows.get(label, {}), **score(emb, obs, probs, args)}
        print(label, rows[label], flush=True)
    rows["gde"].update(fit, n_latent=n_latent)
    order = ["gde", "pseudobulk", "moment embedding", "Wasserstein Wormhole"]
    results["methods"] = {k: rows[k] for k in order + [k for k in rows if k not in order]}
    write_results(results, args.out, markdown)


def markdown(results: dict) -> str:
    est = results["estimator"]
    lines = [
        "# Lineage tracing: early-late mutual information and fate from clone embeddings",
        "",
        f"Device: {results['platform']}. Command: `{results['command']}`.",
        "",
        "## The estimator",
        "",
        "| correlated Gaussians | closed form (bits) | mean error | largest abs. error |",
        "|---|---|---|---|",
        *[
            f"| {k} | {v['closed form bits']:.3f} | {v['mean error']:+.3f} "
            f"| {v['largest |error|']:.3f} |"
            for k, v in est["gaussians (2,000 samples, k=3)"].items()
        ],
        "",
        f"Permutation null on {est['null on independent data']['datasets']} independent "
        f"data sets (100 pairs, 19 shuffles): share with p <= 0.05 "
        f"{est['null on independent data']['share p <= 0.05']:.3f}, p <= 0.2 "
        f"{est['null on independent data']['share p <= 0.2']:.3f}.",
        "",
        "## Simulated clones (held-out clones)",
        "",
        f"{results['data']['cells']} cells, {results['data']['clones']} clones, "
        f"{results['data']['sets']} clone × time sets; day-2 sets have a median "
        f"{results['data']['cells per set at day 2 (median, max)'][0]} cells.",
        "",
    ]
    methods = results["methods"]
    keys = [
        k
        for k in next(v for v in methods.values() if "skipped" not in v)
        if k not in ("train_seconds", "steps", "stop", "train_cells_per_s", "n_latent")
    ]
    lines += ["| embedding | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for label, r in methods.items():
        if "skipped" in r:
            lines.append(f"| {label} | {r['skipped']} |" + " |" * (len(keys) - 1))
            continue
        lines.append(f"| {label} | " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
    g = methods["gde"]
    lines += [
        "",
        f"gde: {g['steps']} steps ({g['stop']}), {g['train_seconds']:.0f} s, "
        f"{g['n_latent']}-dimensional embedding.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
