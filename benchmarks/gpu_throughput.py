"""GPU figures: training, embedding and DDIM-50 sampling throughput on counts.

Simulated counts (``--n-cells`` cells × ``--n-genes`` genes in ``--n-sets`` sets, CSR, in
memory). Training: cells per minute over ``--steps`` timed optimiser steps after a
warm-up (each step holds ``n_sets_per_batch × set_size`` cells), at full and at bf16
mixed precision. Embedding: every cell of every set. Sampling: ``--n-sample`` cells from
the diffusion decoder with DDIM, 50 steps. Targets: ≥ 10^6 cells / min training,
≥ 10^7 embedding, ≥ 10^6 sampling.

    python benchmarks/gpu_throughput.py --out benchmarks/results/gpu
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from default_training import command, write_results  # noqa: E402
from ondisk import write_counts_h5ad  # noqa: E402


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn) -> float:
    _sync()
    start = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-cells", type=int, default=1_000_000)
    parser.add_argument("--n-genes", type=int, default=2000)
    parser.add_argument("--n-sets", type=int, default=200)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--set-size", type=int, default=512)
    parser.add_argument("--n-sets-per-batch", type=int, default=64)
    parser.add_argument("--n-sample", type=int, default=200_000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp"))
    parser.add_argument("--out", default="benchmarks/results/gpu")
    args = parser.parse_args(argv)

    import anndata as ad
    import scvi

    import gde

    path = args.folder / f"gpu_{args.n_cells}_{args.n_genes}.h5ad"
    per_set = args.n_cells // args.n_sets
    if not path.exists():
        sets = {f"set_{i}": per_set for i in range(args.n_sets)}
        write_counts_h5ad(path, sets, args.n_genes, counts_per_cell=args.n_genes)
    adata = ad.read_h5ad(path)
    cells_per_step = args.set_size * args.n_sets_per_batch
    kw = {
        "set_size": args.set_size,
        "n_sets_per_batch": args.n_sets_per_batch,
        "early_stopping": False,
        "enable_progress_bar": False,
    }
    results = {
        "command": command("benchmarks/gpu_throughput.py", argv),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "n_cells": adata.n_obs,
        "n_genes": adata.n_vars,
        "cells_per_step": cells_per_step,
    }
    for decoder in ("cvae", "ddpm"):
        for precision in ("32-true", "bf16-mixed"):
            scvi.settings.seed = 0
            gde.GDEModel.setup_anndata(adata, set_key="set")
            model = gde.GDEModel(adata, decoder=decoder)
            model.train(max_steps=10, precision=precision, **kw)  # warm-up
            seconds = _timed(
                lambda m=model, p=precision: m.train(
                    max_steps=args.steps, steps_per_epoch=args.steps, precision=p, **kw
                )
            )
            results[f"train_{decoder}_{precision}_cells_per_min"] = (
                args.steps * cells_per_step / seconds * 60
            )
        seconds = _timed(lambda m=model: m.get_distribution_embeddings(adata, batch_size=65536))
        results[f"embed_{decoder}_cells_per_min"] = adata.n_obs / seconds * 60
        if decoder == "ddpm":
            n_sets = 20
            n_per_set = args.n_sample // n_sets
            sets = [f"set_{i}" for i in range(n_sets)]
            model.sample(sets=sets[:1], n_cells=100, n_steps=50, seed=0)  # warm-up
            seconds = _timed(
                lambda m=model, s=sets, n=n_per_set: m.sample(
                    sets=s, n_cells=n, n_steps=50, seed=0
                )
            )
            results["sample_ddim50_cells_per_min"] = n_sets * n_per_set / seconds * 60
    write_results(results, args.out, markdown)


def markdown(r: dict) -> str:
    lines = [
        f"# GPU throughput ({r['device']})",
        "",
        f"Command: `{r['command']}`. Data: {r['n_cells']:,} cells × {r['n_genes']:,} genes; "
        f"{r['cells_per_step']:,} cells per training step.",
        "",
        "| figure | cells / min | target |",
        "|---|---|---|",
    ]
    for key, value in r.items():
        if key.endswith("_cells_per_min"):
            target = "10^7" if key.startswith("embed") else "10^6"
            lines.append(f"| {key.removesuffix('_cells_per_min')} | {value:,.0f} | ≥ {target} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
