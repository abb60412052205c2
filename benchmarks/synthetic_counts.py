"""Count sets with equal pseudobulk (``benchmarks/synthetic.py --families counts``).

``gde.datasets.simulate_equal_mean_sets``: every set's expected counts per gene are the
same; sets differ in composition (share of a middle state against two extremes) and in
spread. Truth: exact W2 between the sets' batch-free distributions of log expression.
gde (counts, NB likelihood, default training) is trained on the training sets and every
method is scored on held-out sets by the Spearman of its set distances with the truth,
and by its same-batch ROC-AUC (0.5: batch-blind).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import scanpy as sc
import scipy.linalg
import scvi

import gde

SIM = {"n_sets": 160, "n_cells_per_set": (150, 300), "n_genes": 300, "n_batches": 2}


def _pca_cells(adata, n_comps: int = 10) -> np.ndarray:
    cells = adata.copy()
    sc.pp.normalize_total(cells, target_sum=1e4)
    sc.pp.log1p(cells)
    logx = cells.X.toarray() if hasattr(cells.X, "toarray") else np.asarray(cells.X)
    center = logx.mean(0)
    _, _, vt = np.linalg.svd(logx[::4] - center, full_matrices=False)
    return (logx - center) @ vt[:n_comps].T


def _summed_pseudobulk(adata, names) -> np.ndarray:
    """log CPM of each set's summed counts (decoupler-style pseudobulk)."""
    x = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    sets = adata.obs["set"].to_numpy()
    sums = np.stack([x[sets == n].sum(0) for n in names])
    return np.log1p(sums / sums.sum(1, keepdims=True) * 1e6)


def _moments(adata, names) -> np.ndarray:
    pcs = _pca_cells(adata)
    sets = adata.obs["set"].to_numpy()
    rows = []
    for n in names:
        p = pcs[sets == n]
        root = np.real(scipy.linalg.sqrtm(np.cov(p, rowvar=False)))
        rows.append(np.concatenate([p.mean(0), root.ravel()]))
    return np.asarray(rows)


def run_counts(args) -> tuple[dict, dict]:
    """Train gde with and without the W2 term; score it and the baselines on held-out sets."""
    sim_kw = dict(SIM)
    if args.quick:
        sim_kw.update(n_sets=48, n_cells_per_set=(100, 200))
    adata = gde.datasets.simulate_equal_mean_sets(**sim_kw, seed=args.seed)
    sim = adata.uns["simulation"]
    names = np.asarray(sim["sets"].index)
    rng = np.random.default_rng(args.seed)
    held = np.sort(rng.choice(names, size=len(names) // 4, replace=False))
    truth = sim["w2"].loc[held, held]
    batch = sim["sets"].loc[held, "batch"].to_numpy()
    rows: dict[str, dict] = {}

    def score(label, emb, seconds=None):
        emb = pd.DataFrame(np.asarray(emb), index=held)
        rows[label] = {
            "spearman_w2": gde.metrics.distance_spearman(emb, truth),
            "same_batch_auc": gde.metrics.same_label_auc(emb, batch),
            "train_seconds": seconds,
        }
        print(f"[counts] {label}: {rows[label]}", flush=True)

    train = adata[~adata.obs["set"].isin(held)].copy()
    for label, kw in (("gde", {}), ("gde (no W2 term)", {"w2_weight": 0.0})):
        scvi.settings.seed = args.seed
        t = train.copy()
        gde.GDEModel.setup_anndata(t, set_key="set", batch_key="batch")
        model = gde.GDEModel(t, n_latent=16, **kw)
        start = time.perf_counter()
        model.train(max_steps=200 if args.quick else None, enable_progress_bar=False)
        seconds = time.perf_counter() - start
        emb = model.get_distribution_embeddings(adata.copy(), key_added=None).loc[held]
        score(label, emb, seconds)
    held_adata = adata[adata.obs["set"].isin(held)].copy()
    pb = gde.tl.pseudobulk_embedding(held_adata, set_key="set", key_added=None)
    score("pseudobulk (mean log-normalised)", pb.loc[held])
    score("pseudobulk (summed counts, log CPM)", _summed_pseudobulk(held_adata, held))
    score("moments (mean + cov^1/2 of 10 PCs)", _moments(held_adata, held))
    return rows, {"simulation": {k: str(v) for k, v in sim_kw.items()}}


def render_counts(result: dict) -> list[str]:
    """Markdown lines of the counts family."""
    lines = [
        "### Counts with equal pseudobulk (composition and spread differ)",
        "",
        f"`gde.datasets.simulate_equal_mean_sets` ({result['simulation']}); gde trained with "
        "its default `train()` on three quarters of the sets; scores on the held-out "
        "quarter.",
        "",
        "| method | Spearman (latent, W2) | same-batch AUC (0.5 = batch-blind) | training (s) |",
        "|---|---|---|---|",
    ]
    for label, r in result["methods"].items():
        secs = "—" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"
        lines.append(f"| {label} | {r['spearman_w2']:.3f} | {r['same_batch_auc']:.3f} | {secs} |")
    return [*lines, ""]
