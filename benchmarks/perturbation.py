"""Perturbation prediction: gde against the linear and additive baselines and scVI.

Data: ``gde.datasets.simulate_perturbations`` (defaults: 1,000 genes, 40 single gene
perturbations, 40 pairs, half of them sharing a program so that their effects saturate
instead of adding; a quarter of the singles and of the pairs held out). Every method
sees the training perturbations' cells and the gene feature table the simulator ships
(a noisy projection of each gene's program effects, as gene embeddings would be).

The design of every regression below: the feature table's rows and a multi-hot of the
perturbed genes seen in training (combinations as sums), ridge with each block's penalty
chosen by leave-one-out over the training perturbations (``gde.tl``'s default).

- **gde**: ``GDEModel(linear_set_effect="only")`` trained with
  ``train(weight_ema=0.999)`` (the perturbation page's recipe; ``--model-args`` and
  ``--train-args`` change them), early stopping and step budget as ``train()``'s
  defaults, on the training sets (one set per perturbation, control included);
  ``gde.tl.predict_perturbation_embeddings`` maps the design to embedding shifts;
  ``model.counterfactual`` decodes the control cells under each predicted embedding
  (each keeps its own per-cell latent and library). The row "cells drawn by sample()"
  decodes the same embeddings with per-cell latents drawn from the prior instead. As a
  check of the decoder alone, each held-out set is also embedded from its own real cells
  and the control cells decoded under it (not a prediction: it sees the held-out cells).
- **no change**, **training mean**, **additive**, **linear** (ridge from the same
  design to mean expression): ``gde.tl.perturbation_baselines``; their cells are the
  control cells shifted by the predicted change, in log1p expression.
- **scVI latent shift** (scGen-style arithmetic): scVI trained on the training cells;
  a ridge from the same design to the shift of the mean latent from control; the
  control cells' latents shifted by it and decoded (negative binomial counts).
- **true change** (a ceiling, not a method): the simulator's noise-free change of mean
  log1p expression, scored against the observed means, which carry the sampling noise
  of 150 cells; its cells are the control cells shifted by it.

A generative method's mean expression (gde's rows, scVI's) is the mean of its cells over
10 draws of each (the model's prediction, with a tenth of one draw's sampling noise); its
energy distance uses one draw of each cell.

Scores on held-out perturbations (mean log1p expression per 10,000 counts): Pearson r of
mean deltas against control over all genes and over the top-20 DE genes, R² (squared r,
averaged over perturbations, the GDE paper's), MSE of means, direction of change on the
top-20 DE genes, the change of the perturbed genes themselves (their own knock-down, the
mean over a pair's two genes), and the energy distance between predicted and real cells
in the top 50 principal components of the training cells (``--n-generate`` cells of each
method, the mean over 5 random subsamples; real-vs-real floor: two halves of the real
cells, the mean over 5 random splits), per kind: single, additive pair, non-additive
pair. The energy distance is the all-pairs (V-statistic) estimate, which grows as
samples shrink: the floor, from two halves of 150 cells, sits higher than a method's
figure from 300 cells against 150 would for cells drawn from the real distribution.

    python benchmarks/perturbation.py            # full run
    python benchmarks/perturbation.py --quick    # minutes; every step runs
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
import zlib

import numpy as np
import pandas as pd
import scvi
import torch
from default_training import command, train_default, write_results

import gde
from gde._anndata_utils import get_data, log_normalize, to_dense
from gde._pca import pca, project
from gde.tl._perturbation import _design, _groups, _ridge_on_shifts, _shifts

KINDS = ("single", "additive", "non-additive")
SAMPLED = "gde, cells drawn by sample() instead"
N_DRAWS = 5  # random subsamples behind each energy distance and floor
N_MEAN_DRAWS = 10  # draws of each generated cell behind a generative method's mean
TRUTH = "true change, noise-free (ceiling of the mean scores)"
OWN = "gde from the set's own embedding (decoder check, not a prediction)"


def _scvi_shift(train, held, features, args) -> tuple[dict, list, float]:
    """Decoded cells of held-out perturbations by shifting control latents (scGen-style).

    Returns one draw of cells per perturbation, the mean over ``N_MEAN_DRAWS`` draws, and
    the training time.
    """
    scvi.settings.seed = args.seed
    adata = train.copy()
    scvi.model.SCVI.setup_anndata(adata)
    model = scvi.model.SCVI(adata)
    start = time.perf_counter()
    model.train(max_epochs=args.scvi_epochs, enable_progress_bar=False)
    seconds = time.perf_counter() - start
    z = pd.DataFrame(model.get_latent_representation(adata), index=adata.obs_names)
    labels = adata.obs["perturbation"].astype(str)
    latent_means = z.groupby(labels.to_numpy()).mean()
    # the same design and penalty choice as gde.tl's predictions
    groups = _groups(adata.obs, labels, "perturbation", None)
    _, blocks = _design(groups, held, "control", "+", features, True)
    _, shifts = _shifts(latent_means.loc[groups.index], groups, "control")
    design, (intercept, w, _) = _ridge_on_shifts(shifts, groups, blocks, None)
    ctrl = adata[adata.obs["perturbation"] == "control"]
    zc = torch.as_tensor(model.get_latent_representation(ctrl), dtype=torch.float32)
    lib = torch.as_tensor(
        np.log(np.asarray(get_data(ctrl).sum(1)).reshape(-1, 1)), dtype=torch.float32
    )
    batch = torch.zeros(len(zc), 1, dtype=torch.long)
    out, mean = {}, []
    with torch.no_grad():
        for p in held:
            shift = torch.as_tensor(intercept + design.loc[p].to_numpy() @ w).float()
            gen = model.module.generative(z=zc + shift, library=lib, batch_index=batch)
            draws = [log_normalize(gen["px"].sample().numpy()) for _ in range(N_MEAN_DRAWS)]
            out[p] = draws[0]
            mean.append(np.mean(draws, axis=0).mean(0))
    return out, mean, seconds


def screen_views(adata) -> dict:
    """What every script scores a simulated screen with.

    ``train`` (the training cells), ``held`` (held-out labels), ``kind`` (per label),
    ``means`` and ``ctrl_mean`` (mean log1p per 10k counts), ``x`` and ``labels`` (every
    cell's log1p expression and label) and ``basis`` (top 50 principal components of
    the training cells).
    """
    obs = adata.obs
    x = to_dense(log_normalize(get_data(adata)))
    means = gde.tl.perturbation_means(adata, group_key="perturbation")
    return {
        "train": adata[obs["split"] == "train"].copy(),
        "held": list(obs.loc[obs["split"] == "held_out", "perturbation"].astype(str).unique()),
        "kind": obs.groupby("perturbation", observed=True)["kind"].first().astype(str),
        "means": means,
        "ctrl_mean": means.loc["control"].to_numpy(),
        "x": x,
        "labels": obs["perturbation"].astype(str).to_numpy(),
        "basis": pca(x[np.asarray(obs["split"] == "train")], 50),
    }


def subsampled_energy(fake: np.ndarray, real: np.ndarray, rng, n: int) -> float:
    """Energy distance of ``n`` random cells of ``fake`` to ``real``, mean of N_DRAWS."""
    return float(
        np.mean(
            [
                gde.metrics.energy_distance(fake[rng.permutation(len(fake))[:n]], real)
                for _ in range(N_DRAWS)
            ]
        )
    )


def _energy_of_halves(real: np.ndarray, order: np.ndarray) -> float:
    half = len(real) // 2
    return gde.metrics.energy_distance(real[order[:half]], real[order[half:]])


def own_delta(mean, ctrl_mean, genes: list[int]) -> float:
    """Mean change against control of the perturbed genes themselves (their knock-down)."""
    return float(np.mean(np.asarray(mean)[genes] - np.asarray(ctrl_mean)[genes]))


def shifted_control(control_cells: np.ndarray, control_mean, predicted_mean) -> np.ndarray:
    """Control cells moved by a predicted change of the mean (how mean-only baselines sample)."""
    return control_cells + (np.asarray(predicted_mean) - np.asarray(control_mean))[None]


def run(args) -> dict:
    scvi.settings.seed = args.seed
    kw = {"seed": args.seed}
    if args.quick:
        kw.update(
            n_genes=300,
            n_perturbed=16,
            n_combinations=16,
            n_cells_per_perturbation=60,
            n_control_cells=200,
        )
    adata = gde.datasets.simulate_perturbations(**kw)
    info = adata.uns["perturbation_simulation"]
    features = info["features"]
    # observed means and cells (log1p per 10k counts) of every perturbation
    v = screen_views(adata)
    train, held, kind, means, ctrl_mean = (
        v[k] for k in ("train", "held", "kind", "means", "ctrl_mean")
    )
    x, labels, basis = v["x"], v["labels"], v["basis"]
    control_cells = x[labels == "control"]

    predicted, cells, fits = {}, {}, {}
    gde.GDEModel.setup_anndata(train, set_key="perturbation")
    model = gde.GDEModel(train, **args.model_args)
    fits["gde"], _ = train_default(model, args.max_steps, "cells", **args.train_args)
    fits["gde"]["model_args"] = args.model_args
    fits["gde"]["train_args"] = args.train_args
    emb = gde.tl.predict_perturbation_embeddings(
        model,
        perturbation_key="perturbation",
        control="control",
        perturbations=held,
        features=features,
    )
    # the decoder check: each held-out set embedded from its own real cells
    own = model.get_distribution_embeddings(adata, sets=held, key_added=None)
    fits["gde"]["ridge"] = emb.attrs["ridge"]
    runs = {
        "gde": lambda z: model.counterfactual(z, "control", n_samples=N_MEAN_DRAWS, seed=0),
        SAMPLED: lambda z: model.sample(
            embeddings=z, n_cells=args.n_generate * N_MEAN_DRAWS, seed=0
        ),
        OWN: lambda z: model.counterfactual(z, "control", n_samples=N_MEAN_DRAWS, seed=0),
    }
    for name, z in (("gde", emb), (SAMPLED, emb), (OWN, own)):
        start = time.perf_counter()
        gen = runs[name](z)
        fits["gde"][f"generate_seconds, {name}"] = round(time.perf_counter() - start, 1)
        gx = to_dense(log_normalize(get_data(gen)))
        glabels = gen.obs["perturbation"].astype(str).to_numpy()
        predicted[name] = pd.DataFrame(
            [gx[glabels == p].mean(0) for p in held], index=held, columns=means.columns
        )
        # one draw of each source cell for the energy distance (draws of one cell share
        # its latent and library); sample()'s cells are independent draws already
        first = gen.obs["draw"].to_numpy() == 0 if "draw" in gen.obs else np.ones(len(gx), bool)
        cells[name] = {p: gx[(glabels == p) & first] for p in held}
    base = gde.tl.perturbation_baselines(
        train,
        perturbation_key="perturbation",
        control="control",
        perturbations=held,
        features=features,
    )
    fits["linear"] = {"ridge": base["linear"].attrs["ridge"]}
    base[TRUTH] = pd.DataFrame(
        ctrl_mean + info["true_delta"].loc[held].to_numpy(), index=held, columns=means.columns
    )
    for name, table in base.items():
        predicted[name] = table
        cells[name] = {p: shifted_control(control_cells, ctrl_mean, table.loc[p]) for p in held}
    scvi_cells, scvi_means, scvi_seconds = _scvi_shift(train, held, features, args)
    fits["scVI latent shift"] = {
        "train_seconds": round(scvi_seconds, 1),
        "epochs": args.scvi_epochs,
    }
    cells["scVI latent shift"] = scvi_cells
    predicted["scVI latent shift"] = pd.DataFrame(scvi_means, index=held, columns=means.columns)

    rows, observed_own = [], {}
    for i, p in enumerate(held):
        own_genes = [means.columns.get_loc(g) for g in p.split("+")]
        observed_own[p] = own_delta(means.loc[p], ctrl_mean, own_genes)
        real = project(x[labels == p], *basis)
        # the floor: two halves of the real cells, averaged over random splits
        rng = np.random.default_rng([args.seed, i])
        floor = np.mean(
            [_energy_of_halves(real, rng.permutation(len(real))) for _ in range(N_DRAWS)]
        )
        for method, table in predicted.items():
            score = gde.metrics.perturbation_scores(table.loc[p], means.loc[p], ctrl_mean)
            score["perturbed genes' delta"] = own_delta(table.loc[p], ctrl_mean, own_genes)
            fake = project(cells[method][p], *basis)
            # n_generate cells of each method (their own draws, whatever the other methods)
            rng = np.random.default_rng([args.seed, i, zlib.crc32(method.encode())])
            score["energy distance"] = subsampled_energy(fake, real, rng, args.n_generate)
            score["energy floor"] = floor
            rows.append({"perturbation": p, "kind": kind[p], "method": method, **score})
    table = pd.DataFrame(rows)
    true = info["true_delta"].abs()
    singles = true.loc[[p for p in true.index if "+" not in p]]
    effects = {
        "share of genes with |true delta| > 0.5, median over singles": round(
            float((singles > 0.5).mean(1).median()), 4
        ),
        "same, largest": round(float((singles > 0.5).mean(1).max()), 4),
        "largest |true delta| per single, median": round(float(singles.max(1).median()), 3),
    }
    summary = table.drop(columns="perturbation").groupby(["kind", "method"]).mean()
    return {
        "data": {
            k: (v if not isinstance(v, tuple) else list(v)) for k, v in info["params"].items()
        },
        "n_held_out": {k: int((kind[held] == k).sum()) for k in KINDS},
        "perturbed genes' observed delta": {
            k: round(float(np.mean([observed_own[p] for p in held if kind[p] == k])), 4)
            for k in KINDS
        },
        "effect sizes (log1p per 10k)": effects,
        "fits": fits,
        "summary": {f"{k} | {m}": r.round(4).to_dict() for (k, m), r in summary.iterrows()},
        "per_perturbation": table.round(4).to_dict(orient="records"),
    }


SCORES = (
    "pearson delta",
    "pearson delta, top DEGs",
    "r2 delta",
    "mse",
    "direction, top DEGs",
    "energy distance",
    "perturbed genes' delta",
)


def markdown(results: dict) -> str:
    lines = [
        "# Perturbation prediction: gde against linear, additive and scVI baselines",
        "",
        f"Device: {results['platform']}. Command: `{results['command']}`.",
        "",
        "Held-out perturbations of `simulate_perturbations` "
        f"({', '.join(f'{n} {k}' for k, n in results['n_held_out'].items())}). Means and "
        "deltas in log1p expression per 10,000 counts; top DEGs: the 20 genes with the "
        "largest observed change; energy distance in the top 50 principal components of "
        "the training cells, 300 cells of each method against the real ones, mean of 5 "
        "random subsamples (floor: two halves of the real cells, mean of 5 splits; an "
        "all-pairs estimate, so the floor's smaller samples sit higher). A generative "
        "method's means (gde, scVI) average 10 draws of each of its cells; its energy "
        "distance uses one draw. The perturbed genes' delta: the predicted change of "
        "the perturbed genes themselves (a pair: the mean of its two), to compare with "
        "the observed change in each heading.",
        "",
        "Effect sizes (true change of mean log1p expression, noise-free): "
        + "; ".join(f"{k} {v}" for k, v in results["effect sizes (log1p per 10k)"].items())
        + ".",
        "",
    ]
    summary = results["summary"]
    for k in KINDS:
        keys = [key for key in summary if key.startswith(f"{k} | ")]
        if not keys:
            continue
        floor = np.mean([summary[key]["energy floor"] for key in keys])
        own = results["perturbed genes' observed delta"][k]
        lines += [
            f"## {k} perturbations (energy floor {floor:.3f}; perturbed genes' observed "
            f"delta {own:.3f})",
            "",
            "| method | " + " | ".join(SCORES) + " |",
            "|---|" + "---|" * len(SCORES),
        ]
        for key in keys:
            vals = " | ".join(f"{summary[key][s]:.3f}" for s in SCORES)
            lines.append(f"| {key.split(' | ', 1)[1]} | {vals} |")
        lines.append("")
    fits = results["fits"]
    g = fits["gde"]
    lines.append(
        f"gde (`GDEModel` arguments {json.dumps(g['model_args'])}, `train()` arguments "
        f"{json.dumps(g['train_args'])}): {g['steps']} steps in {g['train_seconds']:.0f} s "
        f"({g['stop']}); "
        f"counterfactual cells {g['generate_seconds, gde']:.0f} s. scVI: "
        f"{fits['scVI latent shift']['epochs']} epochs in "
        f"{fits['scVI latent shift']['train_seconds']:.0f} s. Ridge penalties (feature "
        f"table, multi-hot) by leave-one-out: gde {g['ridge']['penalties']}, linear "
        f"{fits['linear']['ridge']['penalties']}."
    )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small run, every step runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-generate", type=int, default=300)
    parser.add_argument("--scvi-epochs", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=None, help="default: train()'s own")
    parser.add_argument(
        "--model-args",
        type=json.loads,
        default={"linear_set_effect": "only"},
        help="GDEModel arguments, as JSON (default: the perturbation page's choice)",
    )
    parser.add_argument(
        "--train-args",
        type=json.loads,
        default={"weight_ema": 0.999},
        help="train() arguments, as JSON (default: the perturbation page's recipe)",
    )
    parser.add_argument("--out", default="benchmarks/results/perturbation")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_generate, args.scvi_epochs = 60, 2
        args.max_steps = args.max_steps or 20
    warnings.filterwarnings("ignore")
    results = {
        "platform": f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
        "command": command("benchmarks/perturbation.py", argv),
    }
    results.update(run(args))
    write_results(results, args.out, markdown)


if __name__ == "__main__":
    main()
