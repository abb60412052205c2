"""Training speed of GDEModel against scvi-tools' SCVI on the same simulated AnnData.

Both models train in the same process on the same data, without validation; the first
epoch (warm-up) is not counted. Cells per second counts every cell a minibatch holds
(for GDE, ``n_sets_per_batch * set_size`` per step). Writes JSON and Markdown.

    python benchmarks/speed.py --n-cells 50000 --n-genes 2000 --epochs 4

With ``--models gde`` (or ``scvi``) and ``--adata file.h5ad`` it only trains that model,
so that whole processes can be timed against each other with an external timer.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import anndata
import lightning.pytorch as pl
import numpy as np
import scvi
import torch

import gde


class EpochTimer(pl.Callback):
    """Record the wall time and the number of cells of each training epoch."""

    def __init__(self):
        self.times, self.cells = [], []

    def on_train_epoch_start(self, trainer, pl_module):
        self._start, self._cells = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        x = batch[scvi.REGISTRY_KEYS.X_KEY]
        self._cells += int(np.prod(x.shape[:-1]))

    def on_train_epoch_end(self, trainer, pl_module):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._start)
        self.cells.append(self._cells)


def _rate(timer: EpochTimer) -> dict:
    times, cells = np.array(timer.times[1:]), np.array(timer.cells[1:])
    return {
        "epochs_timed": len(times),
        "seconds_per_epoch": float(np.median(times)),
        "cells_per_epoch": int(np.median(cells)),
        "cells_per_second": float(cells.sum() / times.sum()),
    }


def _train_only(adata, models, common) -> None:
    """Train the named models and nothing else (for timing whole processes)."""
    for name in models:
        if name == "gde":
            gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
            gde.GDEModel(adata).train(
                train_size=1.0, early_stopping=False, steps_per_epoch=_gde_steps(adata), **common
            )
        else:
            scvi.model.SCVI.setup_anndata(adata, batch_key="batch")
            batch_size = 2048 if name == "scvi-2048" else 128
            scvi.model.SCVI(adata).train(
                train_size=1.0, early_stopping=False, batch_size=batch_size, **common
            )


def _gde_steps(adata) -> int:
    """Optimiser steps in a GDE epoch that sees about as many cells as an SCVI epoch."""
    return max(1, int(np.ceil(adata.n_obs / 2048)))


def _device() -> str:
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({torch.get_num_threads()} threads, {platform.machine()})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-cells", type=int, default=50_000)
    parser.add_argument("--n-genes", type=int, default=2_000)
    parser.add_argument("--n-sets", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--adata", default=None, help="h5ad to use instead of simulating")
    parser.add_argument(
        "--models",
        nargs="+",
        default=["gde", "scvi", "scvi-2048"],
        choices=["gde", "scvi", "scvi-2048"],
    )
    parser.add_argument("--out", default="benchmarks/results/speed")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    scvi.settings.seed = 0

    common = {
        "max_epochs": args.epochs,
        "accelerator": args.accelerator,
        "enable_progress_bar": False,
    }
    t0 = time.perf_counter()
    if args.adata:
        adata = anndata.read_h5ad(args.adata)
    else:
        adata = gde.datasets.simulate_sets(
            n_sets=args.n_sets,
            n_cells_per_set=args.n_cells // args.n_sets,
            n_genes=args.n_genes,
            n_batches=2,
            seed=0,
        )
    simulate_s = time.perf_counter() - t0
    if set(args.models) != {"gde", "scvi", "scvi-2048"}:
        _train_only(adata, args.models, common)
        return

    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    gde_timer = EpochTimer()
    model = gde.GDEModel(adata)
    model.train(
        train_size=1.0,
        early_stopping=False,
        steps_per_epoch=_gde_steps(adata),
        callbacks=[gde_timer],
        **common,
    )

    scvi.model.SCVI.setup_anndata(adata, batch_key="batch")
    scvi_timer = EpochTimer()
    ref = scvi.model.SCVI(adata)
    ref.train(train_size=1.0, early_stopping=False, callbacks=[scvi_timer], **common)

    big_timer = EpochTimer()
    ref_big = scvi.model.SCVI(adata)
    ref_big.train(
        train_size=1.0, early_stopping=False, callbacks=[big_timer], batch_size=2048, **common
    )

    g, s, b = _rate(gde_timer), _rate(scvi_timer), _rate(big_timer)
    ratio = s["cells_per_second"] / g["cells_per_second"]
    result = {
        "data": {
            "n_cells": adata.n_obs,
            "n_genes": adata.n_vars,
            "n_sets": args.n_sets,
            "simulate_seconds": simulate_s,
        },
        "device": _device(),
        "versions": {
            "gde": gde.__version__,
            "scvi-tools": scvi.__version__,
            "torch": torch.__version__,
        },
        "gde": {**g, "set_size": 128, "n_sets_per_batch": 16},
        "scvi": {**s, "batch_size": 128},
        "scvi_batch_2048": {**b, "batch_size": 2048},
        "gde_cost_per_cell_vs_scvi": ratio,
        "gde_cost_per_cell_vs_scvi_batch_2048": b["cells_per_second"] / g["cells_per_second"],
        "target": "gde_cost_per_cell_vs_scvi <= 1.5",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    md = [
        f"# Training speed: GDEModel vs SCVI ({adata.n_obs:,} cells × {adata.n_vars:,} genes)",
        "",
        f"Device: {result['device']}",
        "",
        "| model | cells / s | s / epoch | cells / epoch |",
        "|---|---|---|---|",
        f"| GDEModel (16 sets × 128 cells) | {g['cells_per_second']:,.0f} | "
        f"{g['seconds_per_epoch']:.2f} | {g['cells_per_epoch']:,} |",
        f"| SCVI (batch 128) | {s['cells_per_second']:,.0f} | {s['seconds_per_epoch']:.2f} | "
        f"{s['cells_per_epoch']:,} |",
        f"| SCVI (batch 2048, same cells per step as GDE) | {b['cells_per_second']:,.0f} | "
        f"{b['seconds_per_epoch']:.2f} | {b['cells_per_epoch']:,} |",
        "",
        f"GDE cost per cell seen, relative to SCVI with its default minibatch: **{ratio:.2f}×** "
        "(target ≤ 1.5×); relative to SCVI with GDE's minibatch size: "
        f"{result['gde_cost_per_cell_vs_scvi_batch_2048']:.2f}×.",
    ]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
