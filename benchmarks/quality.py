"""Quality of set embeddings on simulated sets held out of training.

For each simulation seed: simulate sets of cells with known ground truth (mixtures over
cell states, gene-program activities, batches nested with sets), train GDEModel on two
thirds of the sets, embed all sets, and score on the held-out third:

- Spearman between latent L2 distances and the true W2 distances between sets;
- the same restricted to pairs of sets from different batches;
- same-batch ROC-AUC: how well a small distance predicts "same batch" (0.5 = batch-blind).

The pseudobulk baseline (PCA of per-set mean log-normalised expression) is scored on the
same sets. Writes JSON and Markdown.

    python benchmarks/quality.py --seeds 1 2 3
    python benchmarks/quality.py --mix-sets 0.5 --out benchmarks/results/quality_mix_sets
    python benchmarks/quality.py --model-args '{"linear_set_effect": true}' \
        --out benchmarks/results/quality_linear_set_effect
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import scvi
from learning import Curve

import gde

TARGET = 0.94  # held-out Spearman the default training should reach within 3 minutes
SIM = {
    "n_sets": 120,
    "n_cells_per_set": (100, 400),
    "n_genes": 500,
    "n_batches": 3,
    "batch_effect": 0.5,
}


def run_seed(
    seed: int, max_steps: int | None, mix_sets: float = 0.0, model_args: dict | None = None
) -> dict:
    scvi.settings.seed = seed
    adata = gde.datasets.simulate_sets(**SIM, seed=seed)
    sim = adata.uns["simulation"]
    names = np.asarray(sim["sets"].index)
    rng = np.random.default_rng(seed)
    held_out = rng.choice(names, size=len(names) // 3, replace=False)
    train = adata[~adata.obs["set"].isin(held_out)].copy()
    gde.GDEModel.setup_anndata(train, set_key="set", batch_key="batch")
    model = gde.GDEModel(train, **(model_args or {}))
    # held-out Spearman every 250 steps, timing the training steps only
    data = {"full": adata, "sim": sim, "names": names, "held_out": held_out}
    curve = Curve(model, data, every=250)
    t0 = time.perf_counter()
    model.train(
        max_steps=max_steps, mix_sets=mix_sets, enable_progress_bar=False, callbacks=[curve]
    )
    train_s = time.perf_counter() - t0
    reached = [r for r in curve.rows if r["spearman_w2_held_out"] >= TARGET]
    embeddings = {
        "gde": model.get_distribution_embeddings(adata),
        "pseudobulk": gde.tl.pseudobulk_embedding(adata, set_key="set", key_added=None),
    }
    held = np.isin(names, held_out)
    pairs = held[:, None] & held[None, :]
    batch = sim["sets"]["batch"].to_numpy()
    cross = batch[:, None] != batch[None, :]
    out = {
        "seed": seed,
        "train_seconds": train_s,
        "steps": int(model.history["stop"]["steps"].iloc[-1]),
        "stop": str(model.history["stop"]["reason"].iloc[-1]),
        "curve": curve.rows,
        "seconds_to_target": reached[0]["seconds"] if reached else None,
        "n_train_sets": int((~held).sum()),
        "n_held_out_sets": int(held.sum()),
    }
    for name, emb in embeddings.items():
        emb = emb.loc[names]
        out[name] = {
            "spearman_w2_held_out": gde.metrics.distance_spearman(emb, sim["w2"], pairs),
            "spearman_w2_held_out_cross_batch": gde.metrics.distance_spearman(
                emb, sim["w2"], pairs & cross
            ),
            "same_batch_auc_held_out": gde.metrics.same_label_auc(emb, batch, pairs),
        }
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument(
        "--max-steps", type=int, default=None, help="default: GDEModel.train's own stopping"
    )
    parser.add_argument(
        "--mix-sets", type=float, default=0.0, help="train(mix_sets=...); 0: the default"
    )
    parser.add_argument(
        "--model-args", type=json.loads, default={}, help="GDEModel arguments, as JSON"
    )
    parser.add_argument("--out", default="benchmarks/results/quality")
    parser.add_argument(
        "--render", action="store_true", help="only write the Markdown from the stored JSON"
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    if args.render:  # the tables again, from the stored results
        stored = json.loads(out.with_suffix(".json").read_text())
        runs = stored["runs"]
        args.seeds = [r["seed"] for r in runs]
        args.mix_sets = stored.get("mix_sets", 0.0)
        args.model_args = stored.get("model_args", {})
    else:
        runs = [run_seed(s, args.max_steps, args.mix_sets, args.model_args) for s in args.seeds]
    metrics = [
        "spearman_w2_held_out",
        "spearman_w2_held_out_cross_batch",
        "same_batch_auc_held_out",
    ]
    summary = {
        m: {k: float(np.mean([r[m][k] for r in runs])) for k in metrics}
        for m in ("gde", "pseudobulk")
    }
    result = {
        "simulation": {**SIM, "n_cells_per_set": list(SIM["n_cells_per_set"])},
        "mix_sets": args.mix_sets,
        "model_args": args.model_args,
        "runs": runs,
        "mean": summary,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    md = [
        "# Quality on simulated sets held out of training",
        "",
        f"{SIM['n_sets']} sets of {SIM['n_cells_per_set'][0]}-{SIM['n_cells_per_set'][1]} "
        f"cells × {SIM['n_genes']} genes, {SIM['n_batches']} batches; "
        + (
            "GDEModel(" + ", ".join(f"{k}={v!r}" for k, v in args.model_args.items()) + ")"
            if args.model_args
            else "GDEModel"
        )
        + " trained on 2/3 of the sets with "
        + (
            f"`model.train(mix_sets={args.mix_sets})` (early stopping)"
            if args.mix_sets
            else "default settings (`model.train()`, early stopping)"
        )
        + ", scored on "
        f"the other 1/3. Mean over seeds {args.seeds}. Seconds count the training steps "
        "(one CPU process); the held-out Spearman is checked every 250 steps.",
        "",
        "| embedding | Spearman(latent, W2) | same, cross-batch pairs | same-batch AUC "
        "(0.5 = batch-blind) |",
        "|---|---|---|---|",
    ]
    for name in ("gde", "pseudobulk"):
        s = summary[name]
        md.append(
            f"| {name} | {s['spearman_w2_held_out']:.3f} | "
            f"{s['spearman_w2_held_out_cross_batch']:.3f} | "
            f"{s['same_batch_auc_held_out']:.3f} |"
        )
    md += [
        "",
        "Per seed:",
        "",
        f"| seed | steps | train s | s to ρ ≥ {TARGET} | GDE ρ | pseudobulk ρ | GDE batch AUC "
        "| pseudobulk batch AUC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        md.append(
            f"| {r['seed']} | {r['steps']} | {r['train_seconds']:.0f} | "
            f"{'—' if r['seconds_to_target'] is None else round(r['seconds_to_target'])} | "
            f"{r['gde']['spearman_w2_held_out']:.3f} | "
            f"{r['pseudobulk']['spearman_w2_held_out']:.3f} | "
            f"{r['gde']['same_batch_auc_held_out']:.3f} | "
            f"{r['pseudobulk']['same_batch_auc_held_out']:.3f} |"
        )
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
