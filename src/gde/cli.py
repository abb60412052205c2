"""Command line: ``gde fit`` for pipelines, ``gde demo`` for a first run."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
import warnings
from pathlib import Path

# errors a user can fix by changing the command; anything else is a bug and keeps its
# traceback
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError)
# Python keywords in the library's hints that are options of `gde fit`
_OPTIONS = (
    "set_key",
    "layer",
    "batch_key",
    "obsm_key",
    "likelihood",
    "max_steps",
    "n_latent",
    "min_set_size",
    "validation_size",
)
_NAMED = re.compile(r"\b(" + "|".join(_OPTIONS) + r") '")  # "set_key 'x'"
_BARE = re.compile(r"`(?:model\.train\()?(" + "|".join(_OPTIONS) + r")(?:=\.\.\.\))?`")
_HINT = re.compile(r"`?\b(" + "|".join(_OPTIONS) + r")=('([^']*)'|(\d+(?:\.\d+)?))`?")


def _log(message: str) -> None:
    """Progress and status lines go to stderr, so stdout can be piped."""
    print(message, file=sys.stderr)


@contextlib.contextmanager
def _warnings_as_lines(command: str):
    """Print each warning raised in the block as one ``gde COMMAND: warning:`` line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        yield
    for w in caught:
        if issubclass(w.category, UserWarning):
            _log(f"gde {command}: warning: {cli_message(w.message)}")


def cli_message(error: BaseException) -> str:
    """One line for a user error, its hints in command-line syntax (``--layer counts``)."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    message = " ".join(str(message).split())

    def option(match: re.Match) -> str:
        value = match.group(3) if match.group(3) is not None else match.group(4)
        return f"`--{match.group(1).replace('_', '-')} {value}`"

    message = _HINT.sub(option, message)
    message = _BARE.sub(lambda m: f"`--{m.group(1).replace('_', '-')}`", message)
    message = message.replace(" in `train()`", "")
    message = message.replace("`early_stopping=False`", "`--no-early-stopping`")
    return _NAMED.sub(lambda m: f"--{m.group(1).replace('_', '-')} '", message)


def _strip_registration(adata) -> None:
    """Remove scvi-tools' registration entries before writing a result file."""
    for key in [c for c in adata.obs.columns if str(c).startswith("_scvi_")]:
        del adata.obs[key]
    for key in ("_scvi_uuid", "_scvi_manager_uuid"):
        adata.uns.pop(key, None)


# The demo's budget: the embedding's geometry is in place well before this (held-out
# Spearman is stable from a few hundred steps on), while the decoder would go on
# improving for ~2,500 steps under the default early stopping, about 5 minutes on 2 cores.
DEMO_STEPS = 800


def run_demo(
    out: str = "gde_demo",
    n_sets: int = 32,
    max_steps: int | None = DEMO_STEPS,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Simulate sets, train on three quarters of them, embed all, and plot.

    To finish in about two minutes on a laptop CPU the demo trains for ``max_steps``
    optimiser steps (800); ``max_steps=None`` trains as ``model.train()`` does by
    default, until validation stops improving (about 2,500 steps on these data).

    Writes ``sets.png`` (set embeddings of GDE and of the pseudobulk baseline),
    ``embeddings.csv``, ``summary.json`` and the trained model under ``out``.

    Returns
    -------
    The summary: Spearman correlation of latent distances with the true W2 distances
    on sets held out of training, for GDE and the pseudobulk baseline, and how much the
    embeddings sort sets by batch.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import scvi

    import gde
    from gde._quiet import quiet_backend
    from gde.metrics._geometry import MIN_PAIRS

    n_held = max(2, n_sets // 4)
    n_pairs = n_held * (n_held - 1) // 2
    if n_pairs < MIN_PAIRS:
        raise ValueError(
            f"--n-sets {n_sets} holds out {n_held} sets, {n_pairs} pairs: too few for the "
            f"held-out Spearman correlation (at least {MIN_PAIRS} pairs). Use "
            "--n-sets 20 or more."
        )
    with quiet_backend():
        scvi.settings.seed = seed
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    adata = gde.datasets.simulate_sets(
        n_sets=n_sets, n_cells_per_set=(80, 200), n_genes=300, n_batches=2, seed=seed
    )
    truth = adata.uns["simulation"]
    names = np.asarray(truth["sets"].index)
    rng = np.random.default_rng(seed)
    held_out = rng.choice(names, size=n_held, replace=False)
    train = adata[~adata.obs["set"].isin(held_out)].copy()
    print(
        f"Simulated {adata.n_obs:,} cells in {n_sets} sets ({adata.n_vars} genes, 2 "
        f"batches); training on {n_sets - len(held_out)} sets, {len(held_out)} held out."
    )

    gde.GDEModel.setup_anndata(train, set_key="set", batch_key="batch")
    model = gde.GDEModel(train, n_latent=16)
    if max_steps is not None:
        print(
            f"Training for {max_steps} steps (a short demo budget; `model.train()` with no "
            "arguments trains until validation stops improving)."
        )
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        # the demo's short budget is deliberate and announced above
        warnings.filterwarnings("ignore", message="Training stopped at the step cap")
        model.train(max_steps=max_steps, enable_progress_bar=progress)
    emb = model.get_distribution_embeddings(adata)
    baseline = gde.tl.pseudobulk_embedding(adata, set_key="set")

    held = np.isin(names, held_out)
    pairs = held[:, None] & held[None, :]
    batch = truth["sets"]["batch"].to_numpy()
    summary = {
        "n_cells": int(adata.n_obs),
        "n_sets": n_sets,
        "held_out_sets": len(held_out),
        "held_out_pairs": n_pairs,
    }
    for label, e in (("gde", emb), ("pseudobulk", baseline)):
        e = e.loc[names]
        summary[label] = {
            "spearman_w2_held_out": gde.metrics.distance_spearman(e, truth["w2"], pairs),
            "spearman_w2_all": gde.metrics.distance_spearman(e, truth["w2"]),
            "same_batch_auc": gde.metrics.same_label_auc(e, batch),
        }
    summary["seconds"] = time.perf_counter() - t0

    sets_meta = truth["sets"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    for row, key in enumerate(("X_gde", "X_pseudobulk")):
        gde.pl.set_embedding(adata, key=key, color=sets_meta["a_0"], ax=axes[row, 0], show=False)
        axes[row, 0].set_title(f"{key}: program activity a_0")
        gde.pl.set_embedding(adata, key=key, color="batch", ax=axes[row, 1], show=False)
    fig.tight_layout()
    fig.savefig(outdir / "sets.png", dpi=120)
    plt.close(fig)
    emb.to_csv(outdir / "embeddings.csv")
    model.save(str(outdir / "model"), overwrite=True)
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2))

    g, p = summary["gde"], summary["pseudobulk"]
    print(
        f"\nSpearman(latent distance, true W2) on the {n_pairs} pairs of held-out sets: "
        f"GDE {g['spearman_w2_held_out']:.3f} vs pseudobulk {p['spearman_w2_held_out']:.3f}\n"
        f"Same-batch AUC (0.5 = batch-blind): GDE {g['same_batch_auc']:.3f} vs pseudobulk "
        f"{p['same_batch_auc']:.3f}\n"
        f"Wrote {outdir}/sets.png, embeddings.csv, summary.json and model/ "
        f"in {summary['seconds']:.0f} s."
    )
    return summary


def run_fit(args: argparse.Namespace) -> None:
    """Fit a GDEModel on an h5ad file and write the embeddings."""
    if not Path(args.input).is_file():
        raise FileNotFoundError(f"Input file '{args.input}' does not exist.")
    out = args.out or str(Path(args.input).with_suffix("")) + "_gde.h5ad"
    if Path(out).exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it.")
    import anndata as ad
    import scvi

    import gde
    from gde._quiet import quiet_backend

    with quiet_backend():
        scvi.settings.seed = args.seed
    adata = ad.read_h5ad(args.input)
    _log(f"Read {adata.n_obs:,} cells × {adata.n_vars:,} features from {args.input}.")
    # the progress bar writes to stdout; keep stdout for results
    with contextlib.redirect_stdout(sys.stderr), _warnings_as_lines("fit"):
        gde.GDEModel.setup_anndata(
            adata,
            set_key=args.set_key,
            layer=args.layer,
            obsm_key=args.obsm_key,
            batch_key=args.batch_key,
            categorical_covariate_keys=args.categorical_covariate_keys,
            continuous_covariate_keys=args.continuous_covariate_keys,
        )
        model = gde.GDEModel(adata, n_latent=args.n_latent, likelihood=args.likelihood)
        model.train(
            max_steps=args.max_steps,
            set_size=args.set_size,
            n_sets_per_batch=args.n_sets_per_batch,
            min_set_size=args.min_set_size,
            validation_size=args.validation_size,
            early_stopping=not args.no_early_stopping,
            accelerator=args.accelerator,
            checkpoint_path=args.checkpoint,
            enable_progress_bar=not args.no_progress,
        )
    _log(f"Training: {model.history['stop']['reason'].iloc[0]}.")
    emb = model.get_distribution_embeddings(key_added=args.key_added, copy_to_cells=True)
    if args.save_model:
        model.save(args.save_model, overwrite=args.overwrite)
    _strip_registration(adata)
    adata.write_h5ad(out)
    _log(
        f"Embedded {len(emb)} sets ({emb.shape[1]} dimensions) into uns['{args.key_added}'] "
        f"and obsm['{args.key_added}']."
    )
    print(out)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gde-embeddings")
    except PackageNotFoundError:  # a source tree on the path, not installed
        from gde._version import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    """The ``gde`` argument parser."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog="gde",
        description="Generative distribution embeddings of sets of cells.",
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"gde {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="simulate sets, train, embed, plot to a file", formatter_class=fmt
    )
    demo.add_argument("--out", default="gde_demo", help="output folder")
    demo.add_argument("--n-sets", type=int, default=32, help="sets to simulate (at least 20)")
    demo.add_argument(
        "--max-steps",
        type=int,
        default=DEMO_STEPS,
        help="optimiser steps; 0: the default train(), until validation stops improving",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    fit = sub.add_parser(
        "fit",
        help="train on an h5ad file and write set embeddings",
        formatter_class=fmt,
        description="Train a GDEModel on an h5ad file and write its set embeddings: "
        "uns[KEY_ADDED] (one row per set) and obsm[KEY_ADDED] (per cell). The output "
        "file's path is printed on stdout; progress goes to stderr.",
    )
    fit.add_argument("input", help="h5ad file of cells × features")
    fit.add_argument("--set-key", required=True, help="obs column naming each cell's set")
    fit.add_argument("--layer", default=None, help="layer with raw counts (default: X)")
    fit.add_argument(
        "--obsm-key", default=None, help="model continuous features in obsm (e.g. X_pca)"
    )
    fit.add_argument("--batch-key", default=None, help="obs column naming each cell's batch")
    fit.add_argument("--categorical-covariate-keys", nargs="*", default=None, help="obs columns")
    fit.add_argument("--continuous-covariate-keys", nargs="*", default=None, help="obs columns")
    fit.add_argument("--n-latent", type=int, default=64, help="embedding dimensions")
    fit.add_argument(
        "--likelihood",
        default=None,
        choices=["nb", "zinb", "poisson", "normal"],
        help="default: nb for raw counts, normal for continuous features",
    )
    fit.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="step cap (default: 100 per set, 4,000 to 20,000; early stopping ends sooner)",
    )
    fit.add_argument("--set-size", type=int, default=128, help="cells per set in a minibatch")
    fit.add_argument("--n-sets-per-batch", type=int, default=16, help="sets in a minibatch")
    fit.add_argument(
        "--min-set-size", type=int, default=10, help="smaller sets are left out of training"
    )
    fit.add_argument(
        "--validation-size",
        type=float,
        default=None,
        help="fraction of sets for validation (default: 0.1)",
    )
    fit.add_argument(
        "--no-early-stopping",
        action="store_true",
        help="train for --max-steps, without stopping when validation stops improving",
    )
    fit.add_argument("--accelerator", default="auto", help="cpu, gpu or auto")
    fit.add_argument(
        "--checkpoint",
        default=None,
        help="file for the training state, rewritten as training goes: a job cut short "
        "(e.g. by its time limit) resumes from it when the same command runs again",
    )
    fit.add_argument("--key-added", default="X_gde", help="uns/obsm key of the embeddings")
    fit.add_argument("--out", default=None, help="output h5ad (default: INPUT_gde.h5ad)")
    fit.add_argument("--save-model", default=None, help="folder to save the trained model")
    fit.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    fit.add_argument("--seed", type=int, default=0, help="random seed")
    fit.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gde`` command: 0 on success, 2 on a user error."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            run_demo(
                out=args.out,
                n_sets=args.n_sets,
                max_steps=args.max_steps or None,
                seed=args.seed,
                progress=not args.no_progress,
            )
        elif args.command == "fit":
            run_fit(args)
    except USER_ERRORS as err:
        print(f"gde {args.command}: error: {cli_message(err)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
