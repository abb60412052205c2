"""Cost curves, embedding up to 10^7 cells from disk, and training on a file larger than memory.

Four parts (``--parts``), on simulated sparse counts (``ondisk.write_counts_h5ad``):

* ``curves``: seconds per training step of ``GDEModel`` (16 sets × 128 cells unless
  varied) against the set size, the number of genes and the number of sets, and the time
  of one pass over the cells against the number of cells (10^4 … 10^6, in memory); the
  same 10^6 cells read from disk, stored set by set or in a random order.
* ``embedding``: time and peak memory of embedding one set of 10^4 … 10^7 cells streamed
  from an ``.h5ad`` file; the memory figure is the peak during the call above the
  resident memory just before it (model and ``obs`` loaded, counts on disk).
* ``ddp``: 60 steps of 16 sets by one process, and by two DDP processes (gloo) of 8
  sets each: the scaling efficiency.
* ``out-of-core``: a file at least 3× a memory limit, trained on and embedded by a
  process held to that limit (a cgroup v1 memory limit when this runs as root, else no
  limit and only the peak is reported); every set must come back with its cell count.

Each curve's growth exponent is the slope of log(cost) against log(size).

    python benchmarks/scaling.py --out benchmarks/results/scaling
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from default_training import command, write_results  # noqa: E402
from memory import PeakRSS  # noqa: E402
from ondisk import write_counts_h5ad  # noqa: E402

STEPS = 20  # timed training steps per point (after 5 warm-up steps)


def _exponent(x, y) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _fit(rows: list[dict], x: str, y: str) -> float:
    return _exponent([r[x] for r in rows], [r[y] for r in rows])


def _model(adata, **kwargs):
    import scvi

    import gde

    scvi.settings.seed = 0
    gde.GDEModel.setup_anndata(adata, set_key="set")
    return gde.GDEModel(adata, **kwargs)


def _seconds_per_step(adata, set_size=128, n_sets_per_batch=16) -> float:
    model = _model(adata)
    kw = {"set_size": set_size, "n_sets_per_batch": n_sets_per_batch, "early_stopping": False}
    kw["enable_progress_bar"] = False
    model.train(max_steps=5, **kw)  # warm-up: first batches, caches
    start = time.perf_counter()
    model.train(max_steps=STEPS, steps_per_epoch=STEPS, **kw)
    return (time.perf_counter() - start) / STEPS


def _counts(folder, name, set_sizes, n_genes, **kwargs):
    import anndata as ad

    path = Path(folder) / f"{name}.h5ad"
    if not path.exists():
        write_counts_h5ad(path, set_sizes, n_genes, **kwargs)
    return path, ad.read_h5ad(path)


def curves(folder: Path) -> dict:
    import gde

    out = {}
    sets = {f"set_{i}": 1000 for i in range(100)}  # 10^5 cells, 200 genes
    _, base = _counts(folder, "base", sets, 200)
    out["set_size"] = [
        {"set_size": k, "s_per_step": _seconds_per_step(base, set_size=k)}
        for k in (32, 128, 512, 2048)
    ]
    out["sets_per_batch"] = [
        {"n_sets_per_batch": k, "s_per_step": _seconds_per_step(base, n_sets_per_batch=k)}
        for k in (4, 16, 64)
    ]
    rows = []
    for n_genes in (100, 500, 2000, 5000):
        _, a = _counts(folder, f"genes_{n_genes}", sets, n_genes, counts_per_cell=n_genes / 2)
        rows.append({"n_genes": n_genes, "s_per_step": _seconds_per_step(a)})
    out["genes"] = rows
    rows = []
    for n_sets in (10, 100, 1000):
        s = {f"set_{i}": 100_000 // n_sets for i in range(n_sets)}
        _, a = _counts(folder, f"sets_{n_sets}", s, 200)
        rows.append({"n_sets": n_sets, "s_per_step": _seconds_per_step(a)})
    out["sets"] = rows
    rows = []
    for n_cells in (10**4, 10**5, 10**6):
        s = {f"set_{i}": 1000 for i in range(n_cells // 1000)}
        path, a = _counts(folder, f"cells_{n_cells}", s, 200)
        step = _seconds_per_step(a)
        steps = int(np.ceil(n_cells / (16 * 128)))  # one pass: every cell drawn once on average
        rows.append({"n_cells": n_cells, "s_per_step": step, "s_per_pass": step * steps})
    out["cells"] = rows
    # the same 10^6 cells from disk: stored set by set, and shuffled
    layout = [{"storage": "in memory", "s_per_step": rows[-1]["s_per_step"]}]
    s = {f"set_{i}": 1000 for i in range(1000)}
    for name, shuffle in (
        ("on disk, cells of a set together", False),
        ("on disk, shuffled", True),
    ):
        path = folder / f"layout_{shuffle}.h5ad"
        write_counts_h5ad(path, s, 200, shuffle=shuffle)
        lazy = gde.read_lazy(path)
        step = _seconds_per_step(lazy)
        model = _model(lazy)
        model.train(max_steps=2, enable_progress_bar=False)
        start = time.perf_counter()
        model.get_distribution_embeddings(lazy, key_added=None)
        rate = lazy.n_obs / (time.perf_counter() - start)
        layout.append({"storage": name, "s_per_step": step, "embed_cells_per_s": rate})
    out["layout"] = layout
    out["exponents"] = {
        key: _fit(out[key], field, "s_per_step")
        for key, field in (
            ("set_size", "set_size"),
            ("genes", "n_genes"),
            ("sets", "n_sets"),
            ("sets_per_batch", "n_sets_per_batch"),
        )
    }
    out["exponents"]["cells_per_pass"] = _fit(rows, "n_cells", "s_per_pass")
    return out


def embedding(folder: Path, largest: int) -> dict:
    import gde

    sizes = [s for s in (10**4, 10**5, 10**6, 10**7) if s <= largest]
    path = folder / f"embed_{largest}.h5ad"
    sets = {f"set_{s}": s for s in sizes} | {f"small_{i}": 1000 for i in range(20)}
    info = write_counts_h5ad(path, sets, 20, counts_per_cell=20)
    lazy = gde.read_lazy(path)
    model = _model(lazy)
    model.train(max_steps=20, enable_progress_bar=False)
    rows = []
    for size in sizes:
        with PeakRSS() as mem:
            start = time.perf_counter()
            emb = model.get_distribution_embeddings(lazy, sets=[f"set_{size}"], key_added=None)
            seconds = time.perf_counter() - start
        assert emb.notna().all().all()
        rows.append(
            {
                "set_size": size,
                "seconds": seconds,
                "cells_per_s": size / seconds,
                "peak_above_mb": mem.increase_mb,
            }
        )
    return {
        "file": info,
        "rows": rows,
        "exponent_time": _exponent([r["set_size"] for r in rows], [r["seconds"] for r in rows]),
    }


def _limit_self(limit_mb: int) -> str:
    """Put this process in a cgroup v1 memory group of ``limit_mb``; say how it is held."""
    group = Path("/sys/fs/cgroup/memory/gde_scaling")
    try:
        group.mkdir(exist_ok=True)
        (group / "memory.limit_in_bytes").write_text(str(limit_mb * 2**20))
        (group / "cgroup.procs").write_text(str(os.getpid()))
        (group / "memory.max_usage_in_bytes").write_text("0")  # peak of this run only
        return f"cgroup v1 memory limit of {limit_mb} MB (page cache included)"
    except OSError:
        return "no limit could be set (needs root and cgroup v1); peak reported only"


def _group_peak_mb() -> float | None:
    """Peak memory charged to the cgroup (resident memory and page cache), if any."""
    try:
        peak = Path("/sys/fs/cgroup/memory/gde_scaling/memory.max_usage_in_bytes").read_text()
        return int(peak) / 2**20
    except OSError:
        return None


def out_of_core_child(path: str, limit_mb: int) -> dict:
    """Run inside the limited process: open lazily, train, embed every set."""
    held = _limit_self(limit_mb)
    import pandas as pd

    import gde

    with PeakRSS() as mem:  # resident memory sampled from here on, imports included
        lazy = gde.read_lazy(path)
        start = time.perf_counter()
        model = _model(lazy)
        init_s = time.perf_counter() - start
        steps = 100
        start = time.perf_counter()
        model.train(max_steps=steps, early_stopping=False, enable_progress_bar=False)
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        model.get_distribution_embeddings(lazy, key_added="X_gde")
        embed_s = time.perf_counter() - start
    table = lazy.uns["X_gde"]["table"]
    expected = lazy.obs["set"].value_counts()
    got = pd.Series(table["n_cells"].to_numpy(), index=table.index.astype(str))
    return {
        "memory": held,
        "limit_mb": limit_mb,
        "peak_rss_mb": mem.peak / 2**20,
        "group_peak_mb": _group_peak_mb(),
        "init_seconds": init_s,
        "train_cells_per_s": steps * 16 * 128 / train_s,
        "embed_cells_per_s": lazy.n_obs / embed_s,
        "sets_embedded": int(table.shape[0]),
        "sets_in_file": len(expected),
        "cells_per_set_match": bool(
            got.reindex(expected.index.astype(str)).eq(expected.values).all()
        ),
    }


def _file_info(path: Path) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        n_cells, n_genes = (int(v) for v in f["X"].attrs["shape"])
        nnz = int(f["X"]["data"].shape[0])
    return {"n_cells": n_cells, "n_genes": n_genes, "nnz": nnz, "bytes": path.stat().st_size}


def out_of_core(folder: Path, n_cells: int, limit_mb: int) -> dict:
    path = folder / "large.h5ad"
    sets = {f"set_{i}": 10_000 for i in range(n_cells // 10_000)}
    if not path.exists():
        write_counts_h5ad(path, sets, 500, counts_per_cell=400)
    info = _file_info(path)
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(path), "--limit-mb", str(limit_mb)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return {"file": info, "error": done.stderr[-2000:], "returncode": done.returncode}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"file": info, **result, "file_over_limit": info["bytes"] / 2**20 / limit_mb}


DDP_SCRIPT = """
import sys, time, scvi, anndata as ad, gde
devices, out = int(sys.argv[1]), sys.argv[3]
adata = ad.read_h5ad(sys.argv[2])
scvi.settings.seed = 0
gde.GDEModel.setup_anndata(adata, set_key="set")
model = gde.GDEModel(adata)
kw = dict(max_steps=60, steps_per_epoch=60, early_stopping=False, enable_progress_bar=False,
          n_sets_per_batch=16 // devices, accelerator="cpu", devices=devices)
if devices > 1:
    kw["strategy"] = "ddp"
start = time.perf_counter()
model.train(**kw)
if model.trainer.is_global_zero:
    open(out, "w").write(str(time.perf_counter() - start))
"""


def ddp(folder: Path) -> dict:
    """Wall time of 60 steps of 16 sets: 1 process, and 2 processes of 8 sets each."""
    sets = {f"set_{i}": 1000 for i in range(100)}
    path, _ = _counts(folder, "base", sets, 200)
    script = folder / "ddp.py"
    script.write_text(DDP_SCRIPT)
    seconds = {}
    for devices in (1, 2):
        out = folder / f"ddp_{devices}.txt"
        subprocess.run(
            [sys.executable, str(script), str(devices), str(path), str(out)],
            check=True,
            capture_output=True,
            cwd=folder,
        )
        seconds[devices] = float(out.read_text())
    return {
        "seconds_1_process": seconds[1],
        "seconds_2_processes": seconds[2],
        # ideal: 2 processes take half the time of 1 for the same sets
        "efficiency": seconds[1] / (2 * seconds[2]),
        "cpu_cores": os.cpu_count(),
    }


def markdown(r: dict) -> str:
    lines = ["# Scaling: cost curves, 10^7 cells from disk, data larger than memory", ""]
    lines += [f"Command: `{r['command']}`. Device: CPU, {r['threads']} threads.", ""]
    if r.get("note"):
        lines += [r["note"], ""]
    if "curves" in r:
        c = r["curves"]
        lines += [
            "## Training cost",
            "",
            "Seconds per optimiser step (16 sets × 128 cells, "
            "200 genes, unless varied); exponent = slope of log cost on log size.",
            "",
        ]
        for key, label in (
            ("set_size", "set size"),
            ("genes", "n_genes"),
            ("sets", "n_sets"),
            ("sets_per_batch", "n_sets_per_batch"),
        ):
            field = {
                "genes": "n_genes",
                "sets": "n_sets",
                "sets_per_batch": "n_sets_per_batch",
            }.get(key, key)
            cells = ", ".join(f"{row[field]:,}: {row['s_per_step']:.3f} s" for row in c[key])
            lines.append(f"- {label}: {cells} (exponent {c['exponents'][key]:.2f})")
        cells = ", ".join(
            f"{row['n_cells']:,} cells: {row['s_per_pass']:.1f} s" for row in c["cells"]
        )
        lines += [
            f"- one pass over the cells: {cells} (exponent "
            f"{c['exponents']['cells_per_pass']:.2f})",
            "",
            "### Storage of 10^6 cells",
            "",
            "| storage | s / step | embedding cells / s |",
            "|---|---|---|",
        ]
        for row in c["layout"]:
            rate = row.get("embed_cells_per_s")
            lines.append(
                f"| {row['storage']} | {row['s_per_step']:.3f} | "
                f"{'' if rate is None else f'{rate:,.0f}'} |"
            )
        lines.append("")
    if "embedding" in r:
        e = r["embedding"]
        lines += [
            "## Embedding one set streamed from disk",
            "",
            f"File: {e['file']['n_cells']:,} cells × {e['file']['n_genes']} genes, "
            f"{e['file']['bytes'] / 2**20:,.0f} MB.",
            "",
            "| set size | seconds | cells / s | peak memory above before the call |",
            "|---|---|---|---|",
        ]
        for row in e["rows"]:
            lines.append(
                f"| {row['set_size']:,} | {row['seconds']:.1f} | "
                f"{row['cells_per_s']:,.0f} | {row['peak_above_mb']:.0f} MB |"
            )
        lines += ["", f"Time exponent: {e['exponent_time']:.2f}.", ""]
    if "ddp" in r:
        d = r["ddp"]
        lines += [
            "## Two processes (DDP, gloo, CPU)",
            "",
            f"60 steps of 16 sets × 128 cells: 1 process {d['seconds_1_process']:.1f} s; 2 "
            f"processes of 8 sets each {d['seconds_2_processes']:.1f} s; scaling efficiency "
            f"{d['efficiency']:.2f} (1.0: twice as fast) on {d['cpu_cores']} CPU cores, "
            "where the two processes share the cores one process already uses.",
            "",
        ]
    if "out_of_core" in r:
        o = r["out_of_core"]
        f = o["file"]
        lines += [
            "## A file larger than memory",
            "",
            f"File: {f['n_cells']:,} cells × {f['n_genes']} genes, {f['nnz']:,} non-zeros, "
            f"{f['bytes'] / 2**20:,.0f} MB.",
        ]
        if "error" in o:
            lines += [
                "",
                f"The run failed (exit {o['returncode']}):",
                "",
                "```",
                o["error"],
                "```",
            ]
        else:
            lines += [
                f"Memory: {o['memory']}; file / limit = {o['file_over_limit']:.1f}×; peak "
                f"resident memory {o['peak_rss_mb']:,.0f} MB (sampled every 5 ms, imports "
                f"included); peak charged to the limit, page cache included: "
                f"{o.get('group_peak_mb') or 0:,.0f} MB.",
                f"Set-up {o['init_seconds']:.1f} s; training "
                f"{o['train_cells_per_s']:,.0f} cells / s; "
                f"embedding {o['embed_cells_per_s']:,.0f} cells / s.",
                f"Sets embedded: {o['sets_embedded']} of {o['sets_in_file']}; cells per set "
                f"match the file: {o['cells_per_set_match']}.",
            ]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="curves,embedding,ddp,out-of-core")
    parser.add_argument("--largest-set", type=int, default=10**7)
    parser.add_argument("--large-cells", type=int, default=4_000_000)
    parser.add_argument("--limit-mb", type=int, default=1500)
    parser.add_argument("--folder", type=Path, help="where the files go (default: a temp dir)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(HERE / "results" / "scaling"))
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(out_of_core_child(args.child, args.limit_mb)))
        return
    import torch

    parts = args.parts.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        results = {
            "command": command("benchmarks/scaling.py", argv),
            "threads": torch.get_num_threads(),
        }
        if "curves" in parts:
            results["curves"] = curves(folder)
        if "embedding" in parts:
            results["embedding"] = embedding(folder, args.largest_set)
        if "ddp" in parts:
            results["ddp"] = ddp(folder)
        if "out-of-core" in parts:
            results["out_of_core"] = out_of_core(folder, args.large_cells, args.limit_mb)
    write_results(results, args.out, markdown)


if __name__ == "__main__":
    main()
