"""Learning per step: quality of the set embedding against optimiser steps, per change.

Each variant adds one change to the one before it, from the previous release's defaults
to today's; each trains for a fixed number of steps, and every ``--every`` steps all sets
are embedded and scored:

- ``simulator``: ``benchmarks/quality.py``'s simulation (120 sets, 3 batches), trained on
  two thirds of the sets; Spearman between latent distances and the true W2 on the
  held-out third, and the same-batch ROC-AUC over all sets (0.5: batch-blind);
- ``covid``: COVID-19 CITE-seq RNA (63 samples, 3 batches), trained on all samples as in
  the patients tutorial; donor AUC within batch, condition AUC, same-batch AUC and the
  Spearman with the exact W2 between samples (50 PCs, 500 cells) on same-batch pairs.

A last run per data set trains with the default ``model.train()`` (early stopping) and
reports where it stopped. Each run is stored in ``results/learning_runs/`` as it ends;
``results/learning.{json,md}`` and ``learning.png`` are drawn from every stored run, so the
data sets can be run in separate calls.

    python benchmarks/learning.py --data simulator --jobs 2   # about 20 minutes
    python benchmarks/learning.py --data covid --jobs 2       # about 2 hours on 2 cores
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd

PREVIOUS = {"model": {"log_batch_shift": None}, "plan": {"eps": 0.01}}
VARIANTS = {
    "previous defaults": PREVIOUS,
    "+ Adam eps 1e-8": {"model": {"log_batch_shift": None}, "plan": {}},
    "+ batch centring": {"model": {}, "plan": {}},
    "+ mean path": {"model": {"mean_path": True, "w2_weight": 0.0}, "plan": {}},
    "+ W2 term (default)": {"model": {}, "plan": {}},
}
# what changed in the default model between the previous release and this one
OLD_MODEL = {"mean_path": False, "w2_weight": 0.0}
SIM = {"n_sets": 120, "n_cells_per_set": (100, 400), "n_genes": 500, "n_batches": 3}


def _quiet():
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "scvi"):
        logging.getLogger(name).setLevel(logging.ERROR)


def load(name: str, seed: int, w2_path: Path | None) -> dict:
    import gde

    if name == "simulator":
        adata = gde.datasets.simulate_sets(**SIM, batch_effect=0.5, seed=seed)
        sim = adata.uns["simulation"]
        names = np.asarray(sim["sets"].index)
        held = np.random.default_rng(seed).choice(names, size=len(names) // 3, replace=False)
        return {
            "train": adata[~adata.obs["set"].isin(held)].copy(),
            "full": adata,
            "sim": sim,
            "names": names,
            "held_out": held,
            "set_key": "set",
            "batch_key": "batch",
            "n_latent": 64,
        }
    adata = gde.datasets.liu_covid()
    rna = adata[:, adata.var["feature_types"] == "Gene Expression"].copy()
    samples = rna.obs.groupby("sample_id", observed=True)[["Donor", "Batch", "cond_group"]]
    return {
        "train": rna,
        "full": rna,
        "samples": samples.first(),
        "w2": pd.read_pickle(w2_path),
        "set_key": "sample_id",
        "batch_key": "Batch",
        "n_latent": 32,
    }


def covid_w2(path: Path) -> None:
    """Exact W2 between the samples' cells (50 PCs, 500 cells), as in the tutorial."""
    import scanpy as sc

    import gde

    if path.exists():
        return
    adata = gde.datasets.liu_covid()
    cells = adata[:, adata.var["feature_types"] == "Gene Expression"].copy()
    sc.pp.normalize_total(cells, target_sum=1e4)
    sc.pp.log1p(cells)
    sc.pp.pca(cells, n_comps=50, random_state=0)
    w2 = gde.tl.wasserstein_distances(cells, set_key="sample_id", n_cells=500, key_added=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    w2.to_pickle(path)


def score(d: dict, emb: pd.DataFrame) -> dict:
    import gde

    if "sim" in d:
        names = d["names"]
        emb = emb.loc[names]
        held = np.isin(names, d["held_out"])
        batch = d["sim"]["sets"]["batch"].to_numpy()
        return {
            "spearman_w2_held_out": gde.metrics.distance_spearman(
                emb, d["sim"]["w2"], held[:, None] & held[None, :]
            ),
            "batch_auc": gde.metrics.same_label_auc(emb, batch),
        }
    obs = d["samples"].loc[emb.index]
    batch = obs["Batch"].to_numpy()
    same_batch = batch[:, None] == batch[None, :]
    w2 = d["w2"].loc[emb.index, emb.index]
    auc = gde.metrics.same_label_auc
    return {
        "donor_auc": auc(emb, obs["Donor"]),
        "donor_auc_within_batch": auc(emb, obs["Donor"], same_batch),
        "condition_auc": auc(emb, obs["cond_group"]),
        "batch_auc": auc(emb, batch),
        "spearman_w2_same_batch": gde.metrics.distance_spearman(emb, w2, same_batch),
    }


class Curve(pl.Callback):
    """Score the embeddings every ``every`` steps; time only the training steps."""

    def __init__(self, model, data: dict, every: int):
        self.model, self.data, self.every = model, data, every
        self.rows, self.seconds, self._start = [], 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seconds += time.perf_counter() - self._start
        if trainer.global_step % self.every == 0:
            self.evaluate(trainer.global_step)

    def evaluate(self, step: int) -> None:
        module = self.model.module
        training, trained = module.training, self.model.is_trained_
        self.model.is_trained_ = True  # embed the current state without a warning
        emb = self.model.get_distribution_embeddings(self.data["full"], key_added=None)
        self.model.is_trained_ = trained
        module.train(training)
        row = {"step": step, "seconds": round(self.seconds, 1), **score(self.data, emb)}
        self.rows.append({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})


def run(job: dict) -> dict:
    """One training run (in its own process, one thread)."""
    import scvi
    import torch

    import gde

    _quiet()
    torch.set_num_threads(1)
    scvi.settings.seed = job["seed"]
    d = load(job["data"], job["seed"], job["w2_path"])
    gde.GDEModel.setup_anndata(d["train"], set_key=d["set_key"], batch_key=d["batch_key"])
    spec = VARIANTS.get(job["variant"], {"model": {}, "plan": {}})
    model_kw = {"n_latent": d["n_latent"], **spec["model"]}
    if job["variant"] in list(VARIANTS)[:3]:
        model_kw = {**OLD_MODEL, **model_kw}
    model = gde.GDEModel(d["train"], **model_kw)
    curve = Curve(model, d, job["every"])
    start = time.perf_counter()
    if job["variant"] == "default train()":
        model.train(enable_progress_bar=False, callbacks=[curve])
        curve.evaluate(int(model.trainer.global_step))
        stop = model.history["stop"].iloc[0].to_dict()
    else:
        curve.evaluate(0)
        model.train(
            max_steps=job["steps"],
            early_stopping=False,
            enable_progress_bar=False,
            plan_kwargs=spec["plan"],
            callbacks=[curve],
        )
        stop = None
    result = {
        **{k: job[k] for k in ("data", "variant", "seed", "steps")},
        "wall_seconds": time.perf_counter() - start,
        "curve": curve.rows,
        "stop": {k: (v.item() if hasattr(v, "item") else v) for k, v in (stop or {}).items()},
    }
    # one file per run, written as soon as it ends, so that runs add up across calls
    _run_path(job["runs_dir"], job["data"], job["variant"]).write_text(json.dumps(result))
    return result


def _run_path(runs_dir: Path, data: str, variant: str) -> Path:
    slug = "".join(c if c.isalnum() else "_" for c in variant).strip("_")
    return Path(runs_dir) / f"{data}__{slug}.json"


def stored_runs(runs_dir: Path) -> list[dict]:
    """Every run stored under ``runs_dir``, in the order of the data sets and variants."""
    runs = [json.loads(p.read_text()) for p in sorted(Path(runs_dir).glob("*.json"))]
    order = {v: i for i, v in enumerate([*VARIANTS, "default train()"])}
    data_order = {"simulator": 0, "covid": 1}
    return sorted(runs, key=lambda r: (data_order.get(r["data"], 9), order.get(r["variant"], 99)))


HEADLINE = {"simulator": "spearman_w2_held_out", "covid": "donor_auc_within_batch"}


def render(results: list[dict], args) -> str:
    lines = [
        "## Learning per step",
        "",
        "`python benchmarks/learning.py`; one CPU thread per run. "
        "Each row adds one change to the row above; the last row is the default "
        "`model.train()` with early stopping. Figures at the end of training (or at the "
        "step where early stopping ended it).",
        "",
    ]
    for data in dict.fromkeys(r["data"] for r in results):
        rows = [r for r in results if r["data"] == data]
        keys = [k for k in rows[0]["curve"][0] if k not in ("step", "seconds")]
        lines += [
            f"### {data}",
            "",
            "| variant | steps | train s | " + " | ".join(keys) + " |",
            "|---|---|---|" + "---|" * len(keys),
        ]
        for r in rows:
            last = r["curve"][-1]
            cells = [r["variant"], str(last["step"]), f"{last['seconds']:.0f}"]
            cells += [f"{last[k]:.3f}" for k in keys]
            lines.append("| " + " | ".join(cells) + " |")
        stop = next((r["stop"] for r in rows if r["stop"]), None)
        if stop:
            lines += ["", f"Default `train()`: {stop['reason']} ({stop['steps']} steps)."]
        lines += ["", f"Other variants: {rows[0].get('steps', '?')} steps each."]
        lines.append("")
    return "\n".join(lines)


def plot(results: list[dict], args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datas = list(dict.fromkeys(r["data"] for r in results))
    fig, axes = plt.subplots(len(datas), 2, figsize=(10, 3.4 * len(datas)))
    axes = np.atleast_2d(axes)
    for row, data in zip(axes, datas, strict=True):
        key = HEADLINE[data]
        for r in (r for r in results if r["data"] == data):
            steps = [c["step"] for c in r["curve"]]
            secs = [c["seconds"] for c in r["curve"]]
            vals = [c[key] for c in r["curve"]]
            style = "o" if r["variant"] == "default train()" else ".-"
            row[0].plot(steps, vals, style, label=r["variant"])
            row[1].plot(secs, vals, style, label=r["variant"])
        for ax, xlabel in zip(
            row, ("optimiser steps", "training seconds (1 thread)"), strict=True
        ):
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"{data}: {key}")
        row[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=["simulator", "covid"])
    parser.add_argument("--variants", nargs="+", default=[*VARIANTS, "default train()"])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    _quiet()
    w2_path = Path(os.environ.get("GDE_DATA_DIR", Path.home() / ".cache" / "gde")) / (
        "liu_covid_w2_50pcs_500cells.pkl"
    )
    if "covid" in args.data:
        covid_w2(w2_path)
    runs_dir = args.out / "learning_runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    jobs = [
        {"data": d, "variant": v, "seed": args.seed, "steps": args.steps, "every": args.every,
         "w2_path": w2_path, "runs_dir": runs_dir}
        for d in args.data
        for v in args.variants
    ]  # fmt: skip
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(run, jobs))
    results = stored_runs(runs_dir)  # with runs of earlier calls (other data sets)
    (args.out / "learning.json").write_text(json.dumps(results, indent=1))
    (args.out / "learning.md").write_text(render(results, args))
    plot(results, args, args.out / "learning.png")
    print(render(results, args))


if __name__ == "__main__":
    main()
