"""How well the W2-matching term's target follows each benchmark's ground truth.

The W2 term pulls latent distances towards W2 between sets in a fixed space computed at
setup (:meth:`gde.module.SetModuleBase.w2_space`): for cells, principal components of
batch-corrected log expression; for sequences, principal components of k-mer frequencies
(and log length). An embedding trained to follow that target can rank held-out pairs no
better than the target itself does, unless the generative loss teaches it more. This
script measures the target's own agreement with the ground truth, on the held-out pairs
the quality benchmarks score:

- **count simulator** (``benchmarks/quality.py``'s data and split, per seed): Spearman
  between W2 in the W2 space (the model's ``w2_n_cells`` cells per set, and all cells)
  and the simulator's true W2;
- **motif sets** (``benchmarks/sequences.py``'s families): Spearman between W2 in the
  sequence model's reference space and the ground-truth distance, and with each factor's
  own distance ``|p_s - p_t|``.

No model is trained: the spaces are those a model computes when it is created.

    python benchmarks/target_space.py     # a few minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import platform
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scvi
import torch
from quality import SIM
from sequences import FAMILIES

import gde
from gde.seq import SeqGDEModel


def _held_spearman(w2: pd.DataFrame, truth: pd.DataFrame) -> float:
    return gde.metrics.distance_spearman(w2, truth, precomputed=True)


def simulator_seed(seed: int) -> dict:
    """The quality benchmark's split; W2 between held-out sets in the W2 space."""
    scvi.settings.seed = seed
    adata = gde.datasets.simulate_sets(**SIM, seed=seed)
    sim = adata.uns["simulation"]
    names = np.asarray(sim["sets"].index)
    held_out = np.random.default_rng(seed).choice(names, size=len(names) // 3, replace=False)
    train = adata[~adata.obs["set"].isin(held_out)].copy()
    gde.GDEModel.setup_anndata(train, set_key="set", batch_key="batch")
    model = gde.GDEModel(train)
    held = adata[adata.obs["set"].isin(held_out)].copy()
    codes = {b: i for i, b in enumerate(train.obs["batch"].cat.categories)}
    batch = torch.as_tensor(held.obs["batch"].map(codes).to_numpy()).reshape(-1, 1)
    x = held.X.toarray() if hasattr(held.X, "toarray") else np.asarray(held.X)
    with torch.no_grad():
        held.obsm["w2_space"] = model.module.w2_space(torch.as_tensor(x).float(), batch).numpy()
    out = {}
    n_model = model.init_params_["non_kwargs"]["w2_n_cells"]
    for label, n_cells in (("model's cells per set", n_model), ("all cells", None)):
        w2 = gde.tl.wasserstein_distances(
            held, set_key="set", use_rep="w2_space", n_cells=n_cells, key_added=None
        )
        out[label] = round(_held_spearman(w2, sim["w2"]), 3)
    return out


def motif_family(factors, seed: int) -> dict:
    """W2 between held-out motif sets in the sequence model's reference space."""
    scvi.settings.seed = seed
    adata = gde.datasets.motif_sets(n_sets=80, factors=factors, seed=seed)
    info = adata.uns["motif_sets"]
    held_out = info["sets"].index[info["sets"]["split"] == "held_out"]
    train = adata[adata.obs["split"] == "train"].copy()
    SeqGDEModel.setup_anndata(train, set_key="set", sequence_key="sequence")
    model = SeqGDEModel(train)
    held = adata[adata.obs["set"].isin(held_out)].copy()
    SeqGDEModel.setup_anndata(held, set_key="set", sequence_key="sequence")
    tokens = torch.as_tensor(held.obsm["_gde_tokens"].astype(np.int64))
    with torch.no_grad():
        held.obsm["w2_space"] = model.module.w2_space(tokens, None).numpy()
    w2 = gde.tl.wasserstein_distances(
        held,
        set_key="set",
        use_rep="w2_space",
        n_cells=model.init_params_["non_kwargs"]["w2_n_cells"],
        key_added=None,
    )
    probs = info["sets"].loc[w2.index]
    out = {"ground truth": round(_held_spearman(w2, info["distance"]), 3)}
    for factor in factors:
        p = probs[factor].to_numpy()
        own = pd.DataFrame(np.abs(p[:, None] - p[None]), index=w2.index, columns=w2.index)
        out[factor] = round(_held_spearman(w2, own), 3)
    return out


def markdown(results: dict) -> str:
    lines = [
        "## What the W2 term's target sees",
        "",
        f"`{results['command']}` ({results['platform']}). Spearman between W2 in the W2 "
        "term's fixed space and the ground truth, on the held-out pairs the quality "
        "benchmarks score; no model is trained.",
        "",
        "| count simulator, seed | W2 space, model's cells per set | W2 space, all cells |",
        "|---|---|---|",
    ]
    for seed, r in results["simulator"].items():
        own, every = r["model's cells per set"], r["all cells"]
        lines.append(f"| {seed} | {own:.3f} | {every:.3f} |")
    factors = sorted({f for r in results["motif"].values() for f in r if f != "ground truth"})
    lines += [
        "",
        "| motif family | ground truth | " + " | ".join(factors) + " |",
        "|---|---|" + "---|" * len(factors),
    ]
    for name, r in results["motif"].items():
        cells = [f"{r[f]:.3f}" if f in r else "" for f in factors]
        lines.append(f"| {name} | {r['ground truth']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "target_space"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    results = {
        "platform": f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
        "command": "python benchmarks/target_space.py",
        "simulator": {},
        "motif": {},
    }
    for seed in args.seeds:
        results["simulator"][str(seed)] = simulator_seed(seed)
        print("simulator", seed, results["simulator"][str(seed)], flush=True)
    for name, factors in FAMILIES.items():
        results["motif"][name] = motif_family(factors, 0)
        print("motif", name, results["motif"][name], flush=True)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
