"""Tables and figures of ``benchmarks/synthetic.py`` (see that script)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SET_SIZE = 100
SETS_PER_BATCH = 32
PAPER = {
    "gaussian": {"spearman": 0.96},
    "gmm": {"spearman": 0.76, "recon": {"gde": 1.82, "KME + DDPM": 2.18, "Wormhole": 2.89}},
}
WORMHOLE = "Wasserstein Wormhole"
FAMILY_TITLES = (
    ("gaussian", "5-D Gaussians", "W2² (fitted Gaussian)"),
    ("gmm", "5-D, 3-component Gaussian mixtures", "mixture-W2² (fitted 3-GMM)"),
    ("shape", "2-D shapes: equal mean and covariance", "W2² (decoded vs held-out samples)"),
)


def carry_over(earlier: dict, families_now: list[str]) -> dict:
    """What an earlier result file contributes to a run of ``families_now`` (``--merge``).

    Families not run now are kept whole (their ``earlier_run`` mark, set on results from
    before the current defaults, is kept as it is); of those run now, the
    parts this run does not redo: the set-size ablation, and the rows (with their
    scatter) of methods not run now (e.g. ``--methods gde``, or Wormhole when it is not
    installed; Wormhole does not depend on gde's settings: same data, same budget).
    """
    families = [fam for fam, *_ in FAMILY_TITLES] + ["counts"]
    out = {}
    for fam, entry in earlier.items():
        if fam not in families:
            continue
        if fam not in families_now:
            out[fam] = {**entry, "config": entry.get("config", earlier["config"])}
            out[fam]["earlier_run"] = bool(entry.get("earlier_run", False))
            continue
        out[fam] = {k: entry[k] for k in ("set_size_ablation",) if k in entry}
        scatter = entry.get("scatter", {})
        out[fam]["rows"] = {
            label: (row, scatter.get(label))
            for label, row in entry.get("methods", {}).items()
            if "spearman_w2" in row and not label.endswith(EARLIER)
        }
    return out


EARLIER = " (earlier run)"


def merge_family(rows: dict, extras: dict, kept: dict, config: dict) -> dict:
    """One family's results from this run, completed with ``kept`` (see ``carry_over``).

    A method this run skipped or did not run keeps its earlier row, labelled
    ``"<method> (earlier run)"``.
    """
    for label, (row, scatter) in kept.get("rows", {}).items():
        if label in rows and "skipped" not in rows[label]:
            continue
        rows.pop(label, None)
        rows[label + EARLIER] = row
        if scatter is not None and "scatter" in extras:
            extras["scatter"][label + EARLIER] = scatter
    out = {"methods": rows, **extras, "config": config}
    if "set_size_ablation" in kept and "set_size_ablation" not in extras:
        out["set_size_ablation"] = kept["set_size_ablation"]
        out["set_size_ablation_earlier_run"] = True
    return out


def render(results: dict) -> str:
    cfg = results["config"]
    lines = [
        "## Synthetic distributions: latent W2 geometry and reconstruction",
        "",
        f"`python benchmarks/synthetic.py{' --quick' if cfg['quick'] else ''}`; "
        f"{cfg['n_train']} training and {cfg['n_test']} held-out distributions per family, "
        f"{cfg['samples']} samples each; trained methods get {cfg['steps']} steps of "
        f"{SETS_PER_BATCH} sets × {SET_SIZE} samples (Wormhole: {cfg['wormhole_steps']} "
        f"steps, the same minibatches). Scores on held-out distributions. "
        f"Total {results['total_seconds'] / 60:.1f} min on {results['platform']}.",
        "",
    ]
    for fam, title, recon in FAMILY_TITLES:
        if fam not in results:
            continue
        rows = results[fam]["methods"]
        extra_col = fam in ("gmm", "shape")
        head = "| method | Spearman (latent, W2) |"
        head += " Spearman (latent, mixture W2) |" if extra_col else ""
        head += f" reconstruction {recon} | training (s) |"
        lines += [f"### {title}", "", head, "|" + "---|" * (head.count("|") - 1)]
        for label, r in rows.items():
            if "skipped" in r:
                lines.append(f"| {label} | {r['skipped']} |")
                continue
            cells = [label, f"{r['spearman_w2']:.3f}" if "spearman_w2" in r else "—"]
            if extra_col:
                mw2 = r.get("spearman_mixture_w2")
                cells.append("—" if mw2 is None else f"{mw2:.3f}")
            rec = r["reconstruction"]
            cells.append("—" if rec is None else f"{rec:.4f}")
            cells.append(f"{r['train_seconds']:.0f}" if "train_seconds" in r else "—")
            lines.append("| " + " | ".join(cells) + " |")
        if results[fam].get("earlier_run"):
            lines += [
                "",
                "From an earlier run of this script, before the current defaults (mean path, "
                "Adam eps 1e-8, step-based training); not re-run for this table.",
            ]
        if any(label.endswith(EARLIER) for label in rows):
            lines += [
                "",
                f"Rows marked{EARLIER} are from an earlier run of this script, before the "
                "current defaults; this run did not redo them.",
            ]
        paper = PAPER.get(fam)
        if paper:
            note = f"Paper: Spearman {paper['spearman']}"
            if "recon" in paper:
                note += "; mixture-W2² " + ", ".join(f"{k} {v}" for k, v in paper["recon"].items())
            lines += ["", note + "."]
        lines.append("")
    if "counts" in results:
        from synthetic_counts import render_counts

        lines += render_counts(results["counts"])
    abl = results.get("gaussian", {}).get("set_size_ablation")
    if abl:
        sizes = list(next(iter(abl.values())).keys())
        lines += [
            "### Ablation: pooling and set size at inference (Gaussians, trained on m = "
            f"{SET_SIZE})",
            "",
            "Spearman (latent, W2) / drift of the embedding from the one of "
            f"{cfg['samples']} samples, relative to the mean distance between embeddings."
            + (
                " From an earlier run of this script (before the current defaults)."
                if results["gaussian"].get("set_size_ablation_earlier_run")
                else ""
            ),
            "",
            "| pooling | " + " | ".join(f"m = {m}" for m in sizes) + " |",
            "|---|" + "---|" * len(sizes),
        ]
        for pooling, r in abl.items():
            cells = [f"{r[m]['spearman_w2']:.3f} / {r[m]['relative_drift']:.3f}" for m in sizes]
            lines.append(f"| {pooling} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(results: dict, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = [f for f in ("gaussian", "gmm", "shape") if f in results]
    shown = ["gde", "gde (no W2 term)", "KME + same decoder", WORMHOLE]
    fig, axes = plt.subplots(len(fams), len(shown), figsize=(3.2 * len(shown), 3.0 * len(fams)))
    axes = np.atleast_2d(axes)
    for row, fam in zip(axes, fams, strict=True):
        scat = results[fam]["scatter"]
        for ax, label in zip(row, shown, strict=True):
            if label not in scat:
                ax.set_axis_off()
                continue
            s = scat[label]
            ax.scatter(s["true_w2"], s["latent"], s=3, alpha=0.4)
            rho = results[fam]["methods"][label]["spearman_w2"]
            ax.set_title(f"{fam}: {label}\nSpearman {rho:.3f}", fontsize=8)
            ax.set_xlabel("true W2")
            ax.set_ylabel("latent L2")
    fig.tight_layout()
    fig.savefig(out_dir / "synthetic_scatter.png", dpi=110)
    plt.close(fig)

    abl = results.get("gaussian", {}).get("set_size_ablation")
    if abl:
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
        for pooling, r in abl.items():
            sizes = [int(m) for m in r]
            axes[0].plot(sizes, [r[str(m)]["relative_drift"] for m in sizes], "o-", label=pooling)
            axes[1].plot(sizes, [r[str(m)]["spearman_w2"] for m in sizes], "o-", label=pooling)
        for ax, lab in zip(
            axes, ("relative drift of the embedding", "Spearman (latent, W2)"), strict=True
        ):
            ax.set_xscale("log")
            ax.set_xlabel("set size at inference m")
            ax.set_ylabel(lab)
            ax.axvline(SET_SIZE, color="grey", lw=0.5)
        axes[0].legend(title="pooling")
        fig.tight_layout()
        fig.savefig(out_dir / "synthetic_set_size.png", dpi=110)
        plt.close(fig)
