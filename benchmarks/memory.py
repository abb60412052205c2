"""Peak memory while embedding one set of 10^6 cells (simulated, sparse).

A model is trained briefly on a small simulation with the same genes; then a single set
of ``--n-cells`` cells is embedded from all of its cells. Resident memory is sampled
every 5 ms; the figure is the peak during embedding minus the resident memory just
before (data already loaded). A set ten times smaller is embedded too, to show that
memory does not grow with the set. Writes JSON and Markdown.

    python benchmarks/memory.py --n-cells 1000000 --n-genes 2000
"""

from __future__ import annotations

import argparse
import gc
import json
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import psutil
import scvi
import torch

import gde


class PeakRSS:
    """Sample this process's resident memory in a background thread."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.proc = interval, psutil.Process()

    def __enter__(self):
        gc.collect()
        self.before = self.proc.memory_info().rss
        self.peak, self._stop = self.before, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.increase_mb = (self.peak - self.before) / 2**20


def _embed(model, adata, batch_size):
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        emb = model.get_distribution_embeddings(adata, key_added=None, batch_size=batch_size)
        seconds = time.perf_counter() - t0
    return emb, mem, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-cells", type=int, default=1_000_000)
    parser.add_argument("--n-genes", type=int, default=2_000)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--out", default="benchmarks/results/memory")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    scvi.settings.seed = 0
    torch.set_num_threads(max(1, torch.get_num_threads()))

    train = gde.datasets.simulate_sets(
        n_sets=16, n_cells_per_set=150, n_genes=args.n_genes, n_batches=1, seed=0
    )
    gde.GDEModel.setup_anndata(train, set_key="set")
    model = gde.GDEModel(train)
    model.train(max_steps=2, enable_progress_bar=False, early_stopping=False)

    t0 = time.perf_counter()
    big = gde.datasets.simulate_sets(
        n_sets=1,
        n_cells_per_set=args.n_cells,
        n_genes=args.n_genes,
        n_batches=1,
        library_size=1500,
        seed=1,
    )
    simulate_s = time.perf_counter() - t0
    data_mb = (big.X.data.nbytes + big.X.indices.nbytes + big.X.indptr.nbytes) / 2**20
    small = big[: args.n_cells // 10].copy()

    _, mem_small, sec_small = _embed(model, small, args.batch_size)
    emb, mem_big, sec_big = _embed(model, big, args.batch_size)
    chunk_dense_mb = args.batch_size * args.n_genes * 4 / 2**20
    result = {
        "n_cells": big.n_obs,
        "n_genes": big.n_vars,
        "nnz": int(big.X.nnz),
        "sparse_matrix_mb": data_mb,
        "simulate_seconds": simulate_s,
        "batch_size": args.batch_size,
        "dense_chunk_mb": chunk_dense_mb,
        "embed_1e6": {
            "peak_increase_mb": mem_big.increase_mb,
            "seconds": sec_big,
            "cells_per_second": big.n_obs / sec_big,
        },
        "embed_1e5": {"peak_increase_mb": mem_small.increase_mb, "seconds": sec_small},
        "embedding_finite": bool(np.isfinite(emb.to_numpy()).all()),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    md = [
        f"# Memory: embedding one set of {big.n_obs:,} cells × {big.n_vars:,} genes",
        "",
        f"Sparse counts held by the AnnData: {data_mb:,.0f} MB ({big.X.nnz:,} non-zeros). "
        f"Chunk of {args.batch_size:,} cells, dense: {chunk_dense_mb:,.0f} MB.",
        "",
        "| set size | peak memory above the loaded data | time | cells / s |",
        "|---|---|---|---|",
        f"| {small.n_obs:,} | {mem_small.increase_mb:,.0f} MB | {sec_small:.1f} s | "
        f"{small.n_obs / sec_small:,.0f} |",
        f"| {big.n_obs:,} | {mem_big.increase_mb:,.0f} MB | {sec_big:.1f} s | "
        f"{big.n_obs / sec_big:,.0f} |",
    ]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
