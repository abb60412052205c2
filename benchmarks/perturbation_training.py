"""How training choices move gde's perturbation predictions, over training seeds.

Trains ``GDEModel`` with its default ``train()`` (plus the ``train()`` arguments given) on
the training perturbations of ``gde.datasets.simulate_perturbations(seed=0)``, predicts
the held-out ones as ``benchmarks/perturbation.py`` does (the design's ridge, then the
control cells decoded under each prediction with ``model.counterfactual``) and scores
them beside the linear baseline of the same run: energy distance (mean of 5 subsamples
of 300 cells, top 50 principal components of the training cells), R² of mean deltas and
Pearson r on the top-20 DE genes, per kind of perturbation. One configuration per call;
each call appends one JSON line to ``benchmarks/results/perturbation_training.jsonl``:

    python benchmarks/perturbation_training.py 0 '{}'
    python benchmarks/perturbation_training.py 0 '{"mix_sets": 0.5}'

The first argument is the training seed (``scvi.settings.seed``: the split into training
and validation sets and the draws), the second a JSON object of ``train()`` arguments,
the optional third a folder to save the trained model in (with its AnnData; ``-`` for
none), the optional fourth a JSON object of ``GDEModel`` arguments (e.g.
``'{"linear_set_effect": true}'``; none by default). The data are the same for every
seed. ``docs/perturbation.md`` tabulates the lines.

    python benchmarks/perturbation_training.py --rescore FOLDER [FOLDER ...]

prints, for saved models, R² over the held-out perturbations (and per kind) with means
from ten draws of each control cell, as ``benchmarks/perturbation.py`` scores them.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import scvi
from perturbation import screen_views, shifted_control, subsampled_energy

import gde
from gde._anndata_utils import get_data, log_normalize, to_dense
from gde._pca import project

OUT = Path("benchmarks/results/perturbation_training.jsonl")


def rescore(folders: list[str]) -> None:
    """R² of mean deltas with means from ten draws of each control cell, per saved model."""
    warnings.filterwarnings("ignore")
    adata = gde.datasets.simulate_perturbations(seed=0)
    v = screen_views(adata)
    held, kind, means = v["held"], v["kind"], v["means"]
    for folder in folders:
        model = gde.GDEModel.load(folder)
        emb = gde.tl.predict_perturbation_embeddings(
            model,
            perturbation_key="perturbation",
            control="control",
            perturbations=held,
            features=adata.uns["perturbation_simulation"]["features"],
        )
        moved = model.counterfactual(emb, "control", n_samples=10, seed=0)
        predicted = gde.tl.perturbation_means(moved, group_key="perturbation").loc[held]
        scores = gde.metrics.perturbation_score_table(predicted, means, means.loc["control"])
        r2 = scores["r2 delta"]
        by_kind = r2.groupby(kind[r2.index].to_numpy()).mean().round(4).to_dict()
        print(json.dumps({"model": folder, "r2 over all": round(r2.mean(), 4), **by_kind}))


def main(argv: list[str]) -> dict:
    seed = int(argv[0])
    train_kw = json.loads(argv[1]) if len(argv) > 1 else {}
    warnings.filterwarnings("ignore")
    scvi.settings.seed = seed
    adata = gde.datasets.simulate_perturbations(seed=0)
    features = adata.uns["perturbation_simulation"]["features"]
    v = screen_views(adata)
    train, held, kind, means, ctrl_mean = (
        v[k] for k in ("train", "held", "kind", "means", "ctrl_mean")
    )
    x, labels, basis = v["x"], v["labels"], v["basis"]

    gde.GDEModel.setup_anndata(train, set_key="perturbation")
    model_kw = json.loads(argv[3]) if len(argv) > 3 else {}
    model = gde.GDEModel(train, **model_kw)
    start = time.perf_counter()
    model.train(enable_progress_bar=False, **train_kw)
    seconds = time.perf_counter() - start
    if len(argv) > 2 and argv[2] != "-":  # a folder to keep the trained model in
        model.save(argv[2], overwrite=True, save_anndata=True)
    common = dict(
        perturbation_key="perturbation", control="control", perturbations=held, features=features
    )
    emb = gde.tl.predict_perturbation_embeddings(model, **common)
    moved = model.counterfactual(emb, "control", seed=0)
    gx = to_dense(log_normalize(get_data(moved)))
    glabels = moved.obs["perturbation"].astype(str).to_numpy()
    cells = {"gde": {p: gx[glabels == p] for p in held}}
    linear = gde.tl.perturbation_baselines(train, **common)["linear"]
    control_cells = x[labels == "control"]
    cells["linear"] = {p: shifted_control(control_cells, ctrl_mean, linear.loc[p]) for p in held}

    rows = []
    for i, p in enumerate(held):
        real = project(x[labels == p], *basis)
        for method, per_set in cells.items():
            fake = project(per_set[p], *basis)
            rng = np.random.default_rng([i, zlib.crc32(method.encode())])
            energy = subsampled_energy(fake, real, rng, 300)
            score = gde.metrics.perturbation_scores(per_set[p].mean(0), means.loc[p], ctrl_mean)
            rows.append(
                {
                    "kind": kind[p],
                    "method": method,
                    "energy": energy,
                    "r2": score["r2 delta"],
                    "top DEGs": score["pearson delta, top DEGs"],
                }
            )
    table = pd.DataFrame(rows)
    stop = model.history["stop"].iloc[-1]
    result = {
        "seed": seed,
        "train": train_kw,
        **({"model": model_kw} if model_kw else {}),
        "steps": int(stop["steps"]),
        "train_seconds": round(seconds, 1),
        "ridge": emb.attrs["ridge"],
        "by kind": {
            f"{m} | {k}": r.round(4).to_dict()
            for (m, k), r in table.groupby(["method", "kind"])[["energy", "r2", "top DEGs"]]
            .mean()
            .iterrows()
        },
        "r2 over all": table.groupby("method")["r2"].mean().round(4).to_dict(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rescore"]:
        rescore(sys.argv[2:])
    else:
        main(sys.argv[1:])
