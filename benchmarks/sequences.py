"""Sets of sequences and of methylation reads: gde.seq against the k-mer and rate baselines.

**Motif sets** (``gde.datasets.motif_sets``), three families: sets that differ in what
k-mer counts see (motif composition, length), in what they miss (motif co-occurrence,
order, spacing), and in all five factors. ``SeqGDEModel`` is trained with its default
``train()`` on the training sets; on the held-out sets:

- Spearman between latent distances and the ground-truth distance, for gde, the k-mer
  pseudobulk (``gde.tl.kmer_embedding``, k = 1..3) and gde's untrained start (its mean
  path: a k-mer pseudobulk in the reference space);
- generation: 300 sequences drawn from each held-out set's embedding; the 3-mer spectrum
  distance (``gde.metrics.kmer_spectrum_distance``, k = 1..3) and length distance to the
  set's real sequences, against the floor of two disjoint halves of the real set.

**Methylation reads** (``gde.datasets.smf_reads("nkg2a")``, 6 sample × allele sets):
each set's reads are split into two halves, each half a set; the model trains on all
halves. Scores: for each half, is its nearest other half (latent distance) its own other
half; generated reads (from half A's embedding) against the held-out half B:
per-position methylation rate r and pairwise co-methylation r, with the real half A
against half B as the ceiling. Baseline: the per-position rate vector.

Speed: sequences per second in training (sequences read by the set encoder per second
of optimiser steps) and in sampling.

    python benchmarks/sequences.py            # full run
    python benchmarks/sequences.py --quick    # minutes; every step runs
    python benchmarks/sequences.py --model-args '{"w2_debias": true}' --out DIR
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings

import numpy as np
import pandas as pd
import scvi
import torch
from default_training import command, train_default, write_results

import gde
from gde.seq import SeqGDEModel

FAMILIES = {
    "k-mer visible": ("composition", "length"),
    "k-mer blind": ("cooccurrence", "order", "spacing"),
    "all factors": ("composition", "cooccurrence", "order", "spacing", "length"),
}


def _train(
    adata, set_key: str, max_steps: int | None, untrained=None, model_args=None, **setup
) -> tuple[SeqGDEModel, dict]:
    """Train with the default ``train()``; ``untrained``: AnnData to embed before training."""
    SeqGDEModel.setup_anndata(adata, set_key=set_key, **setup)
    model = SeqGDEModel(adata, **(model_args or {}))
    info, start_emb = train_default(model, max_steps, "sequences", untrained)
    return model, {**info, "untrained": start_emb}


def motif_family(name: str, factors, args) -> dict:
    scvi.settings.seed = args.seed
    adata = gde.datasets.motif_sets(n_sets=args.n_sets, factors=factors, seed=args.seed)
    info = adata.uns["motif_sets"]
    truth = info["distance"]
    held = info["sets"].index[info["sets"]["split"] == "held_out"]
    mask = np.isin(truth.index, held)
    pairs = mask[:, None] & mask[None, :]
    train = adata[adata.obs["split"] == "train"].copy()
    model, out = _train(
        train, "set", args.max_steps, adata, args.model_args, sequence_key="sequence"
    )
    start_emb = out.pop("untrained")
    gde_emb = model.get_distribution_embeddings(adata, key_added=None)
    kmer = gde.tl.kmer_embedding(adata, set_key="set", sequence_key="sequence", key_added=None)
    rho = gde.metrics.distance_spearman
    out["spearman"] = {
        "gde": rho(gde_emb.loc[truth.index], truth, pairs),
        "gde untrained (mean path)": rho(start_emb.loc[truth.index], truth, pairs),
        "k-mer pseudobulk": rho(kmer.loc[truth.index], truth, pairs),
    }
    start = time.perf_counter()
    gen = model.sample(sets=list(held), adata=adata, n_sequences=args.n_generate, seed=0)
    out["sample_sequences_per_s"] = round(gen.n_obs / (time.perf_counter() - start), 1)
    rng = np.random.default_rng(0)
    rows = []
    for s in held:
        real = adata.obs.loc[adata.obs["set"] == s, "sequence"].astype(str).to_numpy()
        fake = gen.obs.loc[gen.obs["set"] == s, "sequence"].astype(str).to_numpy()
        half = rng.permutation(len(real))
        a, b = real[half[: len(real) // 2]], real[half[len(real) // 2 :]]
        rows.append(
            {
                "kmer generated": gde.metrics.kmer_spectrum_distance(fake, real),
                "kmer floor": gde.metrics.kmer_spectrum_distance(a, b),
                "length generated": gde.metrics.length_distance(fake, real),
                "length floor": gde.metrics.length_distance(a, b),
            }
        )
    out["generation"] = pd.DataFrame(rows).mean().round(4).to_dict()
    out["generation"]["kmer ratio to floor"] = round(
        out["generation"]["kmer generated"] / out["generation"]["kmer floor"], 2
    )
    return out


def methylation(args) -> dict:
    scvi.settings.seed = args.seed
    reads = gde.datasets.smf_reads("nkg2a")
    rng = np.random.default_rng(args.seed)
    half = np.empty(reads.n_obs, dtype=object)
    for s in reads.obs["sample"].cat.categories:
        rows = np.flatnonzero(reads.obs["sample"] == s)
        if args.quick:
            rows = rng.choice(rows, min(len(rows), 200), replace=False)
        order = rng.permutation(rows)
        half[order[: len(order) // 2]] = s + " | A"
        half[order[len(order) // 2 :]] = s + " | B"
    keep = half != None  # noqa: E711  (reads left out of a quick run)
    reads = reads[keep].copy()
    reads.obs["half"] = pd.Categorical(half[keep])
    model, out = _train(reads, "half", args.max_steps, model_args=args.model_args)
    out.pop("untrained")
    emb = model.get_distribution_embeddings(reads, key_added=None)
    rate = gde.tl.position_rate_embedding(reads, set_key="half", key_added=None)
    for name, e in (("gde", emb), ("per-position rate", rate)):
        d = gde.metrics.pairwise_distances(e)
        np.fill_diagonal(d, np.inf)
        names = e.index.to_numpy()
        partner = np.array([n[:-1] + ("B" if n.endswith("A") else "A") for n in names])
        out[f"own half nearest, {name}"] = float(np.mean(names[d.argmin(1)] == partner))
    a_sets = [s for s in emb.index if s.endswith("A")]
    gen = model.sample(sets=a_sets, adata=reads, n_sequences=args.n_generate, seed=0)
    rows = []
    for s in a_sets:
        real_b = reads[reads.obs["half"] == s[:-1] + "B"].X
        real_a = reads[reads.obs["half"] == s].X
        fake = gen[gen.obs["half"] == s].X
        rows.append(
            {
                "rate r generated": gde.metrics.position_rate_agreement(fake, real_b),
                "rate r real A vs B": gde.metrics.position_rate_agreement(real_a, real_b),
                "co-methylation r generated": gde.metrics.co_methylation_agreement(fake, real_b),
                "co-methylation r real A vs B": gde.metrics.co_methylation_agreement(
                    real_a, real_b
                ),
            }
        )
    out["generation"] = pd.DataFrame(rows).mean().round(3).to_dict()
    return out


def markdown(results: dict) -> str:
    lines = [
        "# Sets of sequences: gde.seq against k-mer and rate baselines",
        "",
        f"Device: {results['platform']}. Command: `{results['command']}`.",
        "",
        "## Motif sets, held-out sets",
        "",
        "Spearman(latent distance, ground truth) over held-out pairs; generation: 3-mer "
        "spectrum distance (k = 1..3, total variation, 0-1) and length W1 (letters) between "
        "generated and real sequences of each held-out set, and between two halves of "
        "the real set (floor).",
        "",
        "| family | gde | gde untrained | k-mer pseudobulk | k-mer gen / floor "
        "| length gen / floor | steps | train s | seq/s train | seq/s sample |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["motif"].items():
        g = r["generation"]
        lines.append(
            f"| {name} | {r['spearman']['gde']:.3f} "
            f"| {r['spearman']['gde untrained (mean path)']:.3f} "
            f"| {r['spearman']['k-mer pseudobulk']:.3f} "
            f"| {g['kmer generated']:.4f} / {g['kmer floor']:.4f} "
            f"| {g['length generated']:.2f} / {g['length floor']:.2f} | {r['steps']} "
            f"| {r['train_seconds']:.0f} | {r['train_sequences_per_s']:.0f} "
            f"| {r['sample_sequences_per_s']:.0f} |"
        )
    if "methylation" in results:
        m, g = results["methylation"], results["methylation"]["generation"]
        lines += [
            "",
            "## Methylation reads (smftools NKG2A, 6 sample × allele sets, halves)",
            "",
            f"Own other half is the nearest set: gde {m['own half nearest, gde']:.2f}, "
            f"per-position rate {m['own half nearest, per-position rate']:.2f}. Generated "
            f"reads against held-out half B: per-position rate r {g['rate r generated']:.3f} "
            f"(real half A: {g['rate r real A vs B']:.3f}), co-methylation r "
            f"{g['co-methylation r generated']:.3f} (real half A: "
            f"{g['co-methylation r real A vs B']:.3f}). Training: {m['steps']} steps, "
            f"{m['train_seconds']:.0f} s, {m['train_sequences_per_s']:.0f} reads/s.",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small run, every step runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-sets", type=int, default=80)
    parser.add_argument("--n-generate", type=int, default=300)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--no-methylation", action="store_true")
    parser.add_argument("--max-steps", type=int, default=None, help="default: train()'s own")
    parser.add_argument(
        "--model-args", type=json.loads, default={}, help="SeqGDEModel arguments, as JSON"
    )
    parser.add_argument("--out", default="benchmarks/results/sequences")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_sets, args.n_generate, args.max_steps = 24, 40, args.max_steps or 20
    warnings.filterwarnings("ignore")
    results = {
        "platform": f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
        "command": command("benchmarks/sequences.py", argv),
        "motif": {},
    }
    for name in args.families:
        results["motif"][name] = motif_family(name, FAMILIES[name], args)
        print(name, json.dumps(results["motif"][name]), flush=True)
    if not args.no_methylation:
        results["methylation"] = methylation(args)
        print("methylation", json.dumps(results["methylation"]), flush=True)
    write_results(results, args.out, markdown)


if __name__ == "__main__":
    main()
