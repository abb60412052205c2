"""Where the image decoder's class-proportion error comes from.

``benchmarks/images.py`` scores the class proportions of images generated from held-out
sets' embeddings. This script trains the same ``ImageGDEModel`` (``digit_sets(320,
seed=0)``, default ``train()``, seed 0), then reads the class proportions that the same
classifier finds in:

- the sets' own real images (the floor: sampling and classifier errors), and images
  generated from their embeddings, for held-out sets and for 80 training sets (is the
  error the decoder's, or the embedding's on new sets?);
- images generated with the sampler's default (50 DDIM steps, classifier-free guidance 2
  over the middle half of the diffusion time) and with other settings: no guidance,
  guidance 2 and 3 over all of the diffusion time, and 200 DDIM steps instead of 50;
- images generated after training ``--extra-steps`` more steps without early stopping
  (is the default training stopped too soon?), with the held-out Spearman.

Each generated row splits the L1 error into the share of images read as a class absent
from the set and the error among the set's own classes. Sinkhorn divergence as in
``images.py`` (top 50 pixel PCs, to half of the set's real images). Writes
``benchmarks/results/image_decoder_checks.{json,md}``:

    python benchmarks/image_decoder_checks.py               # about an hour on 2 CPU cores
    python benchmarks/image_decoder_checks.py --quick       # every step, in a minute
"""

from __future__ import annotations

import argparse
import platform
import warnings

import numpy as np
import pandas as pd
import scvi
import torch
from default_training import command, write_results
from images import _train, score_generated
from sklearn.linear_model import LogisticRegression

import gde
from gde._pca import pca


def _read(model, adata, sets, weights, classifier, basis, n, generate=True, **sample_kw):
    """Mean L1, absent-class share and Sinkhorn over ``sets``, real or generated images."""
    if generate:
        gen = model.sample(sets=list(sets), adata=adata, n_images=n, seed=0, **sample_kw)
    classes = list(weights.columns)
    rng = np.random.default_rng(0)
    rows = []
    for s in sets:
        real = adata.obsm["X_image"][np.asarray(adata.obs["set"] == s)]
        images = gen.obsm["X_image"][np.asarray(gen.obs["set"] == s)] if generate else real
        pred = classifier.predict(images.reshape(len(images), -1))
        w = weights.loc[s]
        row = {
            "proportion L1": gde.metrics.class_proportion_error(pred, w, classes),
            "absent-class share": float(np.mean(~np.isin(pred, w.index[w > 0]))),
        }
        if generate:
            scores = score_generated(images, real, pred, w, classes, basis, rng)
            row["sinkhorn"] = scores["sinkhorn generated"]
        rows.append(row)
    return pd.DataFrame(rows).mean().round(4).to_dict()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small run, every step runs")
    parser.add_argument("--extra-steps", type=int, default=4000)
    parser.add_argument("--out", default="benchmarks/results/image_decoder_checks")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    n_sets, n, max_steps = (24, 20, 20) if args.quick else (320, 100, None)
    if args.quick:
        args.extra_steps = min(args.extra_steps, 20)
    scvi.settings.seed = 0
    adata = gde.datasets.digit_sets(
        n_sets=n_sets, seed=0, **({"n_images_per_set": 40} if args.quick else {})
    )
    info = adata.uns["digit_sets"]
    weights, truth, split = info["weights"], info["distance"], info["sets"]["split"]
    held = list(split.index[split == "held_out"])
    seen = list(split.index[split == "train"][: len(held)])
    is_train = np.asarray(adata.obs["split"] == "train")
    pixels = adata.obsm["X_image"].reshape(adata.n_obs, -1)
    classifier = LogisticRegression(max_iter=1000).fit(
        pixels[is_train], adata.obs["label"][is_train]
    )
    basis = pca(pixels[is_train], 50)
    model, fit, _ = _train(adata[is_train].copy(), max_steps)
    mask = np.isin(truth.index, held)
    pairs = mask[:, None] & mask[None, :]

    def spearman():
        emb = model.get_distribution_embeddings(adata, key_added=None)
        return round(gde.metrics.distance_spearman(emb.loc[truth.index], truth, pairs), 4)

    common = (weights, classifier, basis, n)
    off = {"guidance_scale": 1.0}
    rows = {
        "real images, held-out sets (floor)": _read(model, adata, held, *common, False),
        "real images, training sets": _read(model, adata, seen, *common, False),
        "generated, held-out sets": _read(model, adata, held, *common),
        "generated, training sets": _read(model, adata, seen, *common),
        "generated, held-out, no guidance": _read(model, adata, held, *common, **off),
        "generated, training sets, no guidance": _read(model, adata, seen, *common, **off),
        "generated, held-out, guidance 2 throughout": _read(
            model, adata, held, *common, guidance_scale=2.0, guidance_interval=None
        ),
        "generated, held-out, guidance 3 throughout": _read(
            model, adata, held, *common, guidance_scale=3.0, guidance_interval=None
        ),
        "generated, held-out, 200 DDIM steps": _read(model, adata, held, *common, n_steps=200),
    }
    spearman_default = spearman()
    model.train(max_steps=args.extra_steps, early_stopping=False, enable_progress_bar=False)
    label = f"after {args.extra_steps} more steps"
    rows[f"generated, held-out, {label}"] = _read(model, adata, held, *common)
    rows[f"generated, training sets, {label}"] = _read(model, adata, seen, *common)
    results = {
        "platform": f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
        "command": command("benchmarks/image_decoder_checks.py", argv),
        "fit": fit,
        "spearman, held-out": {"default train()": spearman_default, label: spearman()},
        "rows": rows,
    }
    write_results(results, args.out, markdown)


def markdown(r: dict) -> str:
    lines = [
        "# Image decoder: where the class-proportion error comes from",
        "",
        f"Device: {r['platform']}. Command: `{r['command']}`. Default `train()` stopped at "
        f"{r['fit']['steps']} steps. Images generated with the default sampler (DDIM 50, "
        "guidance 2 over (0.25, 0.75) of the diffusion time) unless the row says "
        "otherwise. Classifier-read class proportions, L1 to the set's "
        "true weights (0-2); absent-class share: images read as a class the set does not "
        "hold; Sinkhorn to half of the set's real images (top 50 pixel PCs).",
        "",
        "| images | proportion L1 | absent-class share | Sinkhorn |",
        "|---|---|---|---|",
    ]
    for name, row in r["rows"].items():
        sink = f"{row['sinkhorn']:.2f}" if "sinkhorn" in row else "—"
        lines.append(
            f"| {name} | {row['proportion L1']:.3f} | {row['absent-class share']:.3f} | {sink} |"
        )
    sp = ", ".join(f"{k}: {v:.3f}" for k, v in r["spearman, held-out"].items())
    lines += ["", f"Held-out Spearman with the ground truth: {sp}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
