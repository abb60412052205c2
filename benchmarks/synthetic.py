"""Latent W2 geometry and reconstruction on synthetic distributions, gde against baselines.

Two families of distributions, each split into training and held-out *distributions*:

- **Gaussians**: 5-D, means uniform in [0, 1]^5, covariances inverse Wishart with
  ``10 (d - 1)`` degrees of freedom and scale I (the GDE paper's prior). Truth: closed-form
  W2 between the true Gaussians.
- **3-component Gaussian mixtures** (the paper's GMM experiment): 5-D, component means
  uniform in [0, 5]^5, the same covariance prior, Dirichlet(1) weights. Truth: exact W2
  (network simplex) between the held-out sets' samples; also the mixture W2 between the
  true parameters.
- **Shapes** (``gde.datasets.shape_sets``): 2-D mixtures of up to 4 components mapped to
  mean 0 and covariance I, so that only the shape differs (modes, skew, a heavy
  cluster); set means and covariances cannot rank them. Truth: exact W2 between the
  held-out sets' samples.
- **Counts with equal pseudobulk** (``--families counts``, ``synthetic_counts.py``).

Every method sees the same training sets and the same held-out sets. Trained methods get
the same budget: the same number of optimiser steps over minibatches of the same number
of sets of the same size. Scores on held-out distributions:

- Spearman between latent L2 distance and true W2 over all held-out pairs;
- reconstruction: 10,000 samples decoded from each held-out embedding, then W2² between
  the fitted and true Gaussian (Gaussians), or mixture-W2² between a 3-component mixture
  fitted to them and the true mixture (GMMs), or exact W2² between decoded and held-out
  samples (shapes), averaged over held-out sets; the floor row does the same with
  fresh samples of the true distributions;
- training time.

Methods: ``gde`` (mean-pooled set encoder, CVAE decoder, W2-matching term), ``gde
(no W2 term)``, ``sum-pooled encoder`` (everything else as gde), ``KME + same decoder``
(fixed random-Fourier-feature kernel mean embedding), ``pseudobulk`` (set mean),
``moments`` (mean and covariance square root: the Bures geometry; decoded as the Gaussian
with those moments), on the GMMs also ``gde, diffusion decoder`` (``decoder="ddpm"``,
decoded with 50 DDIM steps, 2,000 samples per set) and ``Wasserstein Wormhole`` (if
``wassersteinwormhole`` is installed; its latent distances target W2², which leaves
Spearman unchanged).

Ablations on the Gaussians: set size at inference m ∈ {10, 50, 100, 500} for mean-, sum-
and max-pooled encoders trained on sets of 100 (Spearman at each m, and the drift of a
distribution's embedding from the one of 1,000 samples, relative to the typical distance
between embeddings).

    python benchmarks/synthetic.py            # full run (under an hour on 2 CPU cores)
    python benchmarks/synthetic.py --quick    # minutes
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import ot
import pandas as pd
import scipy.linalg
import scvi
import torch
from synthetic_counts import run_counts
from synthetic_report import (
    SET_SIZE,
    SETS_PER_BATCH,
    WORMHOLE,
    carry_over,
    merge_family,
    plot,
    render,
)

import gde
from gde.metrics import distance_spearman, gaussian_w2, gmm_w2_samples, gmm_w2_squared

FAMILIES = {
    "gaussian": {
        "maker": gde.datasets.gaussian_sets,
        "kw": {
            "n_dims": 5,
            "mean_high": 1.0,
            "cov_prior": "inverse_wishart",
            "cov_df": 40,
            "cov_scale": 1 / 34,
        },
        "n_latent": 16,
    },
    "shape": {
        "maker": gde.datasets.shape_sets,
        "kw": {"n_dims": 2, "n_components": 4, "max_separation": 4.0},
        "n_latent": 16,
    },
    "gmm": {
        "maker": gde.datasets.gmm_sets,
        "kw": {
            "n_dims": 5,
            "n_components": 3,
            "mean_high": 5.0,
            "cov_prior": "inverse_wishart",
            "cov_df": 40,
            "cov_scale": 1 / 34,
            "dirichlet_alpha": 1.0,
        },
        "n_latent": 32,
        # multimodal sets: the diffusion decoder as well
        "extra_methods": {"gde, diffusion decoder": {"decoder": "ddpm"}},
    },
}
N_DECODED = 10_000
N_DECODED_DDPM = 2_000  # DDIM sampling is slow on a CPU; a 3-GMM fit needs far fewer
METHODS = {
    "gde": {},
    "gde (no W2 term)": {"w2_weight": 0.0},
    "sum-pooled encoder": {"pooling": "sum"},
    "KME + same decoder": {"set_encoder": "kme"},
}
INFO_KEY = {"gaussian": "gaussian_sets", "gmm": "gmm_sets", "shape": "shape_sets"}


# ----------------------------------------------------------------------------- data
def make_family(name: str, args) -> tuple:
    spec = FAMILIES[name]
    n_sets = args.n_train + args.n_test
    adata = spec["maker"](
        n_sets=n_sets,
        n_samples_per_set=args.samples,
        held_out_fraction=args.n_test / n_sets,
        seed=args.seed,
        **spec["kw"],
    )
    info = adata.uns[INFO_KEY[name]]
    split = info["sets"]["split"]
    held = list(split.index[split == "held_out"])
    train = adata[adata.obs["split"] == "train"].copy()
    test = adata[adata.obs["split"] == "held_out"].copy()
    truth = truth_w2(name, test, held, info)
    return train, test, held, info, truth


def _set_samples(adata, names) -> list[np.ndarray]:
    sets = adata.obs["set"].to_numpy()
    return [np.asarray(adata.X[sets == n], dtype=np.float64) for n in names]


def truth_w2(name, test, held, info) -> dict[str, pd.DataFrame]:
    idx = [list(info["sets"].index).index(n) for n in held]
    if name == "gaussian":
        w2 = info["w2"].loc[held, held]
        return {"w2": w2}
    xs = _set_samples(test, held)
    n = len(held)
    emp = np.zeros((n, n))
    mw2 = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            emp[i, j] = emp[j, i] = np.sqrt(max(ot.emd2([], [], ot.dist(xs[i], xs[j])), 0))
            a, b = idx[i], idx[j]
            mw2[i, j] = mw2[j, i] = np.sqrt(
                gmm_w2_squared(
                    info["weights"][a], info["means"][a], info["covs"][a],
                    info["weights"][b], info["means"][b], info["covs"][b],
                )
            )  # fmt: skip
    return {
        "w2": pd.DataFrame(emp, index=held, columns=held),
        "mixture_w2": pd.DataFrame(mw2, index=held, columns=held),
    }


def recon_error(name: str, samples: list[np.ndarray], held, info, test=None) -> float:
    names = list(info["sets"].index)
    errs = []
    real = _set_samples(test, held) if name == "shape" else [None] * len(held)
    for x, n, r in zip(samples, held, real, strict=True):
        i = names.index(n)
        if name == "shape":
            errs.append(ot.emd2([], [], ot.dist(x[: len(r)], r)))
        elif name == "gaussian":
            mu, cov = x.mean(0), np.cov(x, rowvar=False)
            errs.append(gaussian_w2(mu, cov, info["means"][i], info["covs"][i], squared=True))
        else:
            errs.append(
                gmm_w2_samples(x, info["weights"][i], info["means"][i], info["covs"][i], seed=0)
            )
    return float(np.mean(errs))


def _fresh(name: str, args, held) -> tuple:
    """New samples of the same distributions (the same seed draws the same parameters)."""
    spec = FAMILIES[name]
    n_sets = args.n_train + args.n_test
    adata = spec["maker"](
        n_sets=n_sets,
        n_samples_per_set=N_DECODED if name == "gmm" else args.samples,
        held_out_fraction=args.n_test / n_sets,
        seed=args.seed,
        **spec["kw"],
    )
    return (adata[adata.obs["set"].isin(held)],)


# -------------------------------------------------------------------------- methods
def train_gde(train, n_latent: int, steps: int, seed: int, **model_kw):
    scvi.settings.seed = seed
    adata = train.copy()
    gde.GDEModel.setup_anndata(adata, set_key="set")
    kw = {"decoder": "cvae", "likelihood": "normal", "n_latent": n_latent, **model_kw}
    model = gde.GDEModel(adata, **kw)
    t0 = time.perf_counter()
    model.train(
        max_steps=steps,
        set_size=SET_SIZE,
        n_sets_per_batch=SETS_PER_BATCH,
        train_size=0.95,
        early_stopping=False,
        enable_progress_bar=False,
    )
    return model, time.perf_counter() - t0


def gde_decode(model, emb: pd.DataFrame) -> list[np.ndarray]:
    """Samples decoded from each embedding (diffusion: DDIM, 50 steps, fewer samples)."""
    kw = {}
    if isinstance(model.module, gde.module.SetDDPM):
        kw = {"n_cells": N_DECODED_DDPM, "n_steps": 50}
    gen = model.sample(embeddings=emb, **{"n_cells": N_DECODED, "seed": 0, **kw})
    return _set_samples(gen, list(emb.index))


def moment_embedding(samples: list[np.ndarray]) -> np.ndarray:
    rows = []
    for x in samples:
        root = np.real(scipy.linalg.sqrtm(np.cov(x, rowvar=False)))
        rows.append(np.concatenate([x.mean(0), root.ravel()]))
    return np.asarray(rows)


def moment_decode(samples: list[np.ndarray], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.multivariate_normal(x.mean(0), np.cov(x, rowvar=False), N_DECODED) for x in samples
    ]


def run_wormhole(train, test, held, n_latent: int, steps: int, seed: int):
    """Wasserstein Wormhole (optional dependency), trained on the same sets."""
    import jax
    from wassersteinwormhole import Wormhole

    train_names = list(train.obs["set"].cat.remove_unused_categories().cat.categories)
    clouds = _set_samples(train, train_names)
    test_clouds = _set_samples(test, held)
    t0 = time.perf_counter()
    model = Wormhole(
        point_clouds=[c.astype(np.float32) for c in clouds],
        point_clouds_test=[c.astype(np.float32) for c in test_clouds],
        emb_dim=n_latent,
        num_layers=2,
        mlp_dim=128,
        dist_func_enc="W2",
        dist_func_dec="S2",
        num_particles_output=SET_SIZE,
        num_sinkhorn_iter=100,
    )
    model.train(
        training_steps=steps,
        batch_size=SETS_PER_BATCH,
        shape_sample=SET_SIZE,
        verbose=max(steps, 1),
        key=jax.random.key(seed),
    )
    seconds = time.perf_counter() - t0
    enc = np.asarray(model.encode(model.point_clouds_test, model.weights_test))
    dec = np.asarray(model.decode(enc))
    return enc, [np.asarray(d, dtype=np.float64) for d in dec], seconds


# ------------------------------------------------------------------------ ablations
def subsample_adata(test, held, m: int, n_rep: int, seed: int):
    """AnnData of ``n_rep`` random subsets of ``m`` samples of each held-out set."""
    import anndata as ad

    rng = np.random.default_rng(seed)
    xs = _set_samples(test, held)
    rows, names = [], []
    for n, x in zip(held, xs, strict=True):
        for r in range(n_rep):
            rows.append(x[rng.choice(len(x), m, replace=False)])
            names += [f"{n}|{r}"] * m
    out = ad.AnnData(np.concatenate(rows).astype(np.float32), var=test.var.copy())
    out.obs_names = [f"c{i}" for i in range(out.n_obs)]
    out.obs["set"] = pd.Categorical(names)
    return out


def set_size_ablation(models: dict, test, held, truth, args) -> dict:
    out = {}
    for pooling, model in models.items():
        full = model.get_distribution_embeddings(test, key_added=None).loc[held]
        scale = float(np.mean(gde.metrics.pairwise_distances(full)[np.triu_indices(len(held), 1)]))
        rows = {}
        for m in args.set_sizes:
            sub = subsample_adata(test, held, m, args.n_rep, args.seed + m)
            emb = model.get_distribution_embeddings(sub, key_added=None)
            drift, rhos = [], []
            for r in range(args.n_rep):
                e = emb.loc[[f"{n}|{r}" for n in held]]
                e.index = held
                drift.append(np.linalg.norm(e.to_numpy() - full.to_numpy(), axis=1).mean())
                rhos.append(distance_spearman(e, truth["w2"]))
            rows[str(m)] = {
                "spearman_w2": float(np.mean(rhos)),
                "relative_drift": float(np.mean(drift) / scale),
            }
        out[pooling] = rows
    return out


# -------------------------------------------------------------------------- running
def run_family(name: str, args) -> tuple[dict, dict]:
    spec = FAMILIES[name]
    train, test, held, info, truth = make_family(name, args)
    test_samples = _set_samples(test, held)
    rows: dict[str, dict] = {}
    extras = {"scatter": {}}
    trained = {}

    def score(label, emb, decoded, seconds):
        emb = pd.DataFrame(np.asarray(emb), index=held)
        row = {"spearman_w2": distance_spearman(emb, truth["w2"])}
        if "mixture_w2" in truth:
            row["spearman_mixture_w2"] = distance_spearman(emb, truth["mixture_w2"])
        row["reconstruction"] = (
            recon_error(name, decoded, held, info, test) if decoded is not None else None
        )
        row["train_seconds"] = seconds
        rows[label] = row
        iu = np.triu_indices(len(held), 1)
        extras["scatter"][label] = {
            "latent": gde.metrics.pairwise_distances(emb)[iu].tolist(),
            "true_w2": truth["w2"].to_numpy()[iu].tolist(),
        }
        print(f"[{name}] {label}: {row}", flush=True)

    for label, kw in {**METHODS, **spec.get("extra_methods", {})}.items():
        if args.methods and label not in args.methods:
            continue
        model, secs = train_gde(train, spec["n_latent"], args.steps, args.seed, **kw)
        emb = model.get_distribution_embeddings(test, key_added=None).loc[held]
        score(label, emb, gde_decode(model, emb), secs)
        trained[label] = model

    score("pseudobulk", np.stack([x.mean(0) for x in test_samples]), None, 0.0)
    if name != "gaussian":  # the floor: fresh samples of the true distributions
        fresh = _set_samples(*_fresh(name, args, held), held)
        rows["floor: 10,000 true samples"] = {
            "reconstruction": recon_error(name, fresh, held, info, test)
        }
    t0 = time.perf_counter()
    mom = moment_embedding(test_samples)
    score("moments", mom, moment_decode(test_samples, args.seed), time.perf_counter() - t0)

    if args.wormhole:
        try:
            enc, dec, secs = run_wormhole(
                train, test, held, spec["n_latent"], args.wormhole_steps, args.seed
            )
            score(WORMHOLE, enc, dec, secs)
        except ImportError as err:
            rows[WORMHOLE] = {"skipped": f"not installed ({err})"}

    if name == "gaussian" and args.ablations and {"gde", "sum-pooled encoder"} <= set(trained):
        models = {"mean": trained["gde"], "sum": trained["sum-pooled encoder"]}
        models["max"], _ = train_gde(
            train, spec["n_latent"], args.steps, args.seed, w2_weight=1.0, pooling="max"
        )
        extras["set_size_ablation"] = set_size_ablation(models, test, held, truth, args)
    return rows, extras


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run (minutes)")
    parser.add_argument("--families", nargs="+", default=["gaussian", "gmm", "shape", "counts"])
    parser.add_argument("--n-train", type=int, default=800)
    parser.add_argument("--n-test", type=int, default=40)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--wormhole-steps", type=int, default=400)
    parser.add_argument("--no-wormhole", dest="wormhole", action="store_false")
    parser.add_argument("--no-ablations", dest="ablations", action="store_false")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="gde variants to train (default: all); with --merge, the others keep their "
        "rows from the existing result file",
    )
    parser.add_argument("--set-sizes", type=int, nargs="+", default=[10, 50, 100, 500])
    parser.add_argument("--n-rep", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the families not run now from the existing result file",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_train, args.n_test, args.samples = 120, 16, 600
        args.steps, args.wormhole_steps, args.n_rep = 300, 20, 2
    warnings.filterwarnings("ignore")
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    t0 = time.perf_counter()
    results: dict = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "platform": f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
    }
    stem = "synthetic_quick" if args.quick else "synthetic"
    previous = args.out / f"{stem}.json"
    kept = {}
    if args.merge and previous.exists():
        kept = carry_over(json.loads(previous.read_text()), args.families)
        results.update({fam: entry for fam, entry in kept.items() if fam not in args.families})
    args.out.mkdir(parents=True, exist_ok=True)
    for fam in args.families:
        rows, extras = run_counts(args) if fam == "counts" else run_family(fam, args)
        results[fam] = merge_family(rows, extras, kept.get(fam, {}), results["config"])
        # written after each family, so that a long run that is stopped keeps what it did
        results["total_seconds"] = time.perf_counter() - t0
        (args.out / f"{stem}.json").write_text(json.dumps(results, indent=1))
        (args.out / f"{stem}.md").write_text(render(results))
    if not args.quick:
        plot(results, args.out)
    print(render(results))
    return results


if __name__ == "__main__":
    main()
