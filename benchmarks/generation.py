"""Generation quality and speed of the CVAE and diffusion (DDPM) decoders.

Three parts, each written to ``benchmarks/results/generation.{json,md}``:

1. **Gaussian sets** (the GDE paper's reconstruction protocol): random 5-D Gaussians
   (means uniform in [0, 1]^5, Wishart covariances). Models train on ``--n-train``
   distributions of ``--train-samples`` samples each. Evaluation is on ``--n-test``
   *new* distributions: each is embedded from 10,000 samples, 10,000 samples are
   generated from its embedding, and the Gaussian fitted to them is compared with the
   true one: W2² and the paper's ``||Δμ|| + Bures²(Σ)``. Also Spearman between latent
   distances and true W2 on those distributions. The DDPM is scored with DDIM (50 steps)
   and ancestral sampling (all steps).
2. **Count simulator**: sets of cells from :func:`gde.datasets.simulate_sets`; models
   train on two thirds of the sets. Each held-out set is split in two halves: the model
   embeds half A and generates as many cells as half B holds; the Pearson correlations
   of per-gene log1p means and variances with half B are averaged over sets. Half A
   against half B is the ceiling (sampling noise only).
3. **Sampling speed**: cells generated per second for each decoder and sampler.

    python benchmarks/generation.py            # full run (about 1 h on 2 CPU cores)
    python benchmarks/generation.py --quick    # minutes
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scvi
import torch

import gde
from gde.metrics import bures_squared, gaussian_w2, moment_error, per_set_agreement

GAUSS_MODEL = {"n_latent": 16}
DDPM_MODEL = {"n_diffusion_steps": 400}
COUNT_SIM = {"n_sets": 60, "n_cells_per_set": (300, 600), "n_genes": 300, "n_batches": 2}


def _fit(model, train_kw: dict) -> float:
    t0 = time.perf_counter()
    model.train(enable_progress_bar=False, **train_kw)
    return time.perf_counter() - t0


def _timed_sample(model, **kw):
    t0 = time.perf_counter()
    out = model.sample(**kw)
    return out, time.perf_counter() - t0


PRIORS = {
    # the GDE paper's prior: covariances inverse Wishart(df = 10 (d - 1), scale I)
    "paper": {"cov_prior": "inverse_wishart", "cov_df": 40, "cov_scale": 1 / 34},
    # harder: strongly anisotropic covariances, Wishart(d + 2) with mean 0.1 I
    "anisotropic": {"cov_prior": "wishart", "cov_df": 7, "cov_scale": 0.1},
}


def _gaussian_scores(gen, names, info) -> dict:
    w2, paper, dmu, bures = [], [], [], []
    for i, name in enumerate(names):
        x = gen.X[(gen.obs["set"] == name).to_numpy()].astype(np.float64)
        mu, cov = x.mean(0), np.cov(x, rowvar=False)
        w2.append(gaussian_w2(mu, cov, info["means"][i], info["covs"][i], squared=True))
        paper.append(moment_error(x, info["means"][i], info["covs"][i]))
        dmu.append(np.linalg.norm(mu - info["means"][i]))
        bures.append(bures_squared(cov, info["covs"][i]))
    return {
        "w2_squared": float(np.mean(w2)),
        "paper_metric": float(np.mean(paper)),
        "mean_error": float(np.mean(dmu)),
        "bures_squared": float(np.mean(bures)),
    }


def gaussian_part(args) -> dict:
    prior = PRIORS[args.gauss_prior]
    train = gde.datasets.gaussian_sets(
        n_sets=args.n_train,
        n_samples_per_set=args.train_samples,
        held_out_fraction=0.0,
        seed=args.seed,
        **prior,
    )
    test = gde.datasets.gaussian_sets(
        n_sets=args.n_test,
        n_samples_per_set=10_000,
        held_out_fraction=0.0,
        seed=args.seed + 1000,
        **prior,
    )
    info = test.uns["gaussian_sets"]
    names = list(info["sets"].index)
    train_kw = {
        "set_size": 100,
        "n_sets_per_batch": 32,
        "early_stopping": False,
    }
    results = {}
    for decoder in ("cvae", "ddpm"):
        scvi.settings.seed = args.seed
        adata = train.copy()
        gde.GDEModel.setup_anndata(adata, set_key="set")
        extra = DDPM_MODEL if decoder == "ddpm" else {}
        model = gde.GDEModel(adata, decoder=decoder, likelihood="normal", **GAUSS_MODEL, **extra)
        epochs = args.cvae_epochs if decoder == "cvae" else args.ddpm_epochs
        # an epoch is one pass over the training samples, as many steps as that takes
        steps = int(np.ceil(0.9 * args.n_train * args.train_samples / (100 * 32)))
        train_s = _fit(model, {**train_kw, "max_epochs": epochs, "steps_per_epoch": steps})
        emb = model.get_distribution_embeddings(test, key_added=None)
        row = {
            "train_seconds": train_s,
            "epochs": len(model.history["train_loss"]),
            "spearman_w2": gde.metrics.distance_spearman(emb, info["w2"]),
        }
        # ancestral sampling (all steps) is scored on the first sets only (it is slow on
        # a CPU), beside DDIM on the same sets
        subset = names[: args.n_test_ancestral]
        runs = {decoder: (names, {})}
        if decoder == "ddpm":
            runs = {
                "ddpm_ddim50": (names, {"n_steps": 50}),
                "ddpm_ddim50_subset": (subset, {"n_steps": 50}),
                "ddpm_full_subset": (subset, {}),
                "ddpm_ddim50_guided_subset": (subset, {"n_steps": 50, "guidance_scale": 2.0}),
            }
        for key, (chosen, kw) in runs.items():
            gen, secs = _timed_sample(
                model, embeddings=emb.loc[chosen], n_cells=10_000, seed=0, **kw
            )
            results[key] = {
                **row,
                **_gaussian_scores(gen, chosen, info),
                "n_sets_scored": len(chosen),
                "cells_per_second": gen.n_obs / secs,
            }
    # floor: the same metrics for 10,000 fresh samples of the true Gaussians
    rng = np.random.default_rng(args.seed + 7)
    floor_w2, floor_paper = [], []
    for i in range(len(names)):
        x = rng.multivariate_normal(info["means"][i], info["covs"][i], 10_000)
        floor_w2.append(
            gaussian_w2(
                x.mean(0), np.cov(x, rowvar=False), info["means"][i], info["covs"][i], True
            )
        )
        floor_paper.append(moment_error(x, info["means"][i], info["covs"][i]))
    results["true_samples"] = {
        "w2_squared": float(np.mean(floor_w2)),
        "paper_metric": float(np.mean(floor_paper)),
    }
    results["prior"] = {"name": args.gauss_prior, **prior}
    return results


def count_part(args) -> dict:
    sim = {**COUNT_SIM, "n_sets": args.count_sets}
    adata = gde.datasets.simulate_sets(**sim, seed=args.seed)
    names = np.asarray(adata.uns["simulation"]["sets"].index)
    rng = np.random.default_rng(args.seed)
    held_out = rng.choice(names, size=len(names) // 3, replace=False)
    held = adata[adata.obs["set"].isin(held_out)].copy()
    half = rng.random(held.n_obs) < 0.5
    half_a, half_b = held[half].copy(), held[~half].copy()
    n_gen = int(half_b.obs["set"].value_counts().median())
    ceiling = per_set_agreement(half_a, half_b)
    results = {
        "ceiling_half_vs_half": {
            "mean_r": float(ceiling["mean_r"].mean()),
            "var_r": float(ceiling["var_r"].mean()),
        }
    }
    samplers = {"cvae": {"": {}}, "ddpm": {"ddim50": {"n_steps": 50}, "full": {}}}
    for decoder in ("cvae", "ddpm"):
        scvi.settings.seed = args.seed
        train = adata[~adata.obs["set"].isin(held_out)].copy()
        gde.GDEModel.setup_anndata(train, set_key="set", batch_key="batch")
        extra = DDPM_MODEL if decoder == "ddpm" else {}
        model = gde.GDEModel(train, decoder=decoder, **extra)
        train_s = _fit(model, {"max_steps": args.count_steps})
        for label, kw in samplers[decoder].items():
            gen, secs = _timed_sample(
                model, sets=list(held_out), adata=half_a, n_cells=n_gen, seed=0, **kw
            )
            table = per_set_agreement(gen, half_b)
            key = f"{decoder}_{label}" if label else decoder
            results[key] = {
                "train_seconds": train_s,
                "steps": int(model.history["stop"]["steps"].iloc[-1]),
                "mean_r": float(table["mean_r"].mean()),
                "var_r": float(table["var_r"].mean()),
                "mean_r_min": float(table["mean_r"].min()),
                "var_r_min": float(table["var_r"].min()),
                "cells_per_second": gen.n_obs / secs,
            }
    results["settings"] = {
        **{k: (list(v) if isinstance(v, tuple) else v) for k, v in sim.items()},
        "n_held_out_sets": len(held_out),
        "cells_generated_per_set": n_gen,
    }
    return results


def markdown(result: dict) -> str:
    g, c = result["gaussian"], result["counts"]
    a = result["args"]
    md = [
        "# Generation: CVAE and diffusion decoders",
        "",
        f"Device: {result['device']}. Command: `{result['command']}`.",
        "",
        "## Gaussian sets (5-D), distributions never seen in training",
        "",
        f"Prior: {g['prior']}. "
        f"Trained on {a['n_train']} Gaussians × {a['train_samples']} samples for "
        f"{a['cvae_epochs']} (CVAE) or {a['ddpm_epochs']} (DDPM) epochs; scored on "
        f"{a['n_test']} new Gaussians, each embedded "
        "from 10,000 samples, 10,000 samples generated from its embedding. W2² and Bures² "
        "in squared data units; the paper's metric is ‖Δμ‖ + Bures²(Σ) (GDE paper: 0.02).",
        "",
        "| decoder | W2² | paper metric | ‖Δμ‖ | Bures² | Spearman(latent, W2) "
        "| train s | cells/s generated |",
        "|---|---|---|---|---|---|---|---|",
    ]
    n_sub = g["ddpm_full_subset"]["n_sets_scored"]
    for key, label in (
        ("cvae", "CVAE (normal)"),
        ("ddpm_ddim50", "DDPM, DDIM 50 steps"),
        ("ddpm_ddim50_subset", f"DDPM, DDIM 50 steps, first {n_sub} sets"),
        (
            "ddpm_full_subset",
            f"DDPM, ancestral ({a['n_diffusion_steps']} steps), first {n_sub} sets",
        ),
        ("ddpm_ddim50_guided_subset", f"DDPM, DDIM 50 steps, guidance 2, first {n_sub} sets"),
    ):
        r = g[key]
        md.append(
            f"| {label} | {r['w2_squared']:.4f} | {r['paper_metric']:.4f} | "
            f"{r['mean_error']:.4f} | {r['bures_squared']:.4f} | {r['spearman_w2']:.3f} | "
            f"{r['train_seconds']:.0f} | {r['cells_per_second']:,.0f} |"
        )
    f = g["true_samples"]
    md.append(
        f"| 10,000 true samples (floor) | {f['w2_squared']:.4f} | {f['paper_metric']:.4f} "
        "| | | | | |"
    )
    s = c["settings"]
    md += [
        "",
        "## Count simulator, held-out sets",
        "",
        f"{s['n_sets']} sets × {s['n_genes']} genes, {s['n_batches']} batches; trained on 2/3 "
        f"of the sets ({a['count_steps'] or 'default `train()`,'} steps); each of the "
        f"{s['n_held_out_sets']} held-out sets is embedded from half of its cells and "
        f"{s['cells_generated_per_set']} cells are generated; Pearson r of per-gene "
        "log1p mean and variance against the other half, averaged over sets (min in "
        "brackets).",
        "",
        "| decoder | mean r | variance r | train s | cells/s generated |",
        "|---|---|---|---|---|",
    ]
    for key, label in (
        ("cvae", "CVAE (NB)"),
        ("ddpm_ddim50", "latent DDPM (NB), DDIM 50"),
        ("ddpm_full", "latent DDPM (NB), ancestral"),
    ):
        r = c[key]
        md.append(
            f"| {label} | {r['mean_r']:.3f} ({r['mean_r_min']:.3f}) | {r['var_r']:.3f} "
            f"({r['var_r_min']:.3f}) | {r['train_seconds']:.0f} | "
            f"{r['cells_per_second']:,.0f} |"
        )
    ceil = c["ceiling_half_vs_half"]
    md.append(
        f"| real half vs real half (ceiling) | {ceil['mean_r']:.3f} | {ceil['var_r']:.3f} | | |"
    )
    return "\n".join(md) + "\n"


def render(json_path: str) -> None:
    """Rewrite the Markdown table from a JSON result file."""
    path = Path(json_path)
    path.with_suffix(".md").write_text(markdown(json.loads(path.read_text())))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run, a few minutes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--train-samples", type=int, default=200)
    parser.add_argument("--cvae-epochs", type=int, default=80, help="Gaussian part")
    parser.add_argument("--ddpm-epochs", type=int, default=30, help="Gaussian part")
    parser.add_argument("--n-test", type=int, default=40)
    parser.add_argument("--n-test-ancestral", type=int, default=8)
    parser.add_argument("--gauss-prior", choices=sorted(PRIORS), default="paper")
    parser.add_argument("--count-sets", type=int, default=60)
    parser.add_argument(
        "--count-steps", type=int, default=None, help="default: train()'s own stopping"
    )
    parser.add_argument("--out", default="benchmarks/results/generation")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_train, args.n_test, args.n_test_ancestral = 200, 10, 2
        args.cvae_epochs, args.ddpm_epochs = 5, 5
        args.count_sets, args.count_steps = 24, 100
    warnings.filterwarnings("ignore")
    device = "GPU: " + torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    if device == "CPU":
        device += f" ({torch.get_num_threads()} threads, {platform.processor() or 'unknown'})"
    result = {
        "device": device,
        "command": "python benchmarks/generation.py" + (" --quick" if args.quick else ""),
        "args": {**vars(args), "n_diffusion_steps": DDPM_MODEL["n_diffusion_steps"]},
        "gaussian": gaussian_part(args),
        "counts": count_part(args),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=float))
    md = markdown(result)
    out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    pd.set_option("display.width", 120)
    main()
