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
  (is the default training stopped too soon?), with the held-out Spearman; several
  numbers train in parts and read the held-out sets after each (default sampler and
  guidance 2 throughout).

``--data fashion-mnist`` does the same on 28×28 Fashion-MNIST (``fashion_mnist_sets(320,
seed=0)``); ``--models DIR`` loads the model ``images.py --models DIR`` kept instead of
training it; ``--sets-every N`` and ``--n-images`` read every N-th set only, with fewer
images (Fashion-MNIST samples about 10 images/s on two CPU cores).

Each generated row splits the L1 error into the share of images read as a class absent
from the set and the error among the set's own classes. Sinkhorn divergence as in
``images.py`` (top 50 pixel PCs, to half of the set's real images). Writes
``benchmarks/results/image_decoder_checks.{json,md}`` (Fashion-MNIST:
``image_decoder_checks_fashion_mnist``):

    python benchmarks/image_decoder_checks.py               # about an hour on 2 CPU cores
    python benchmarks/image_decoder_checks.py --data fashion-mnist --models DIR \
        --sets-every 5 --n-images 50 --extra-steps 1000 1000   # about 75 minutes
    python benchmarks/image_decoder_checks.py --quick       # every step, in a minute
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
import scvi
from default_training import command, device_name, write_results
from image_sets import (
    DATA,
    class_reading,
    load_sets,
    model_folder,
    readers,
    results_name,
    score_sets,
    train_or_load,
)

import gde


def _read(model, adata, sets, weights, classifier, basis, n, generate=True, **sample_kw):
    """Mean L1, absent-class share and Sinkhorn over ``sets``, real or generated images."""
    if generate:
        scores = score_sets(model, adata, sets, weights, classifier, basis, n, **sample_kw)
        scores = scores.rename(columns={"sinkhorn generated": "sinkhorn"})
        return (
            scores[["proportion L1", "absent-class share", "sinkhorn"]].mean().round(4).to_dict()
        )
    classes = list(weights.columns)
    rows = []
    for s in sets:
        real = adata.obsm["X_image"][np.asarray(adata.obs["set"] == s)]
        rows.append(
            class_reading(classifier.predict(real.reshape(len(real), -1)), weights.loc[s], classes)
        )
    return pd.DataFrame(rows).mean().round(4).to_dict()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small run, every step runs")
    parser.add_argument("--extra-steps", type=int, nargs="+", default=[4000])
    parser.add_argument("--data", default="digits", choices=list(DATA))
    parser.add_argument(
        "--fashion-mnist-path", default=None, help="folder of the Fashion-MNIST files"
    )
    parser.add_argument("--models", default=None, help="images.py's --models folder")
    parser.add_argument("--sets-every", type=int, default=1, help="read every N-th set")
    parser.add_argument("--n-images", type=int, default=100, help="generated per set")
    parser.add_argument("--out", default=None, help="default: results/image_decoder_checks")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    n_sets, n, max_steps = (24, 20, 20) if args.quick else (320, args.n_images, None)
    if args.quick:
        args.extra_steps = [min(e, 20) for e in args.extra_steps]
    scvi.settings.seed = 0
    kw = {"n_images_per_set": 40} if args.quick else {}
    adata, info = load_sets(args.data, args.fashion_mnist_path, n_sets=n_sets, **kw)
    weights, truth, split = info["weights"], info["distance"], info["sets"]["split"]
    all_held = list(split.index[split == "held_out"])
    held = all_held[:: args.sets_every]
    seen = list(split.index[split == "train"][: len(all_held)])[:: args.sets_every]
    is_train = np.asarray(adata.obs["split"] == "train")
    _, classifier, basis = readers(adata, is_train)
    model, fit, _ = train_or_load(
        adata[is_train].copy(), max_steps, model_folder(args.models, args.data)
    )
    # the checks read the untuned default sampler, also of a kept model that images.py tuned
    model.guidance_ = None
    mask = np.isin(truth.index, all_held)
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
    spearmans = {"default train()": spearman_default}
    extra = 0
    throughout = {"guidance_scale": 2.0, "guidance_interval": None}
    for steps in args.extra_steps:
        model.train(max_steps=steps, early_stopping=False, enable_progress_bar=False)
        extra += steps
        label = f"after {extra} more steps"
        spearmans[label] = spearman()
        rows[f"generated, held-out, {label}"] = _read(model, adata, held, *common)
        rows[f"generated, held-out, guidance 2 throughout, {label}"] = _read(
            model, adata, held, *common, **throughout
        )
    rows[f"generated, training sets, {label}"] = _read(model, adata, seen, *common)
    results = {
        "platform": device_name(),
        "command": command("benchmarks/image_decoder_checks.py", argv),
        "fit": fit,
        "data": args.data,
        "sets read": {"held-out": len(held), "training": len(seen), "images per set": n},
        "spearman, held-out": spearmans,
        "rows": rows,
    }
    out = results_name("benchmarks/results/image_decoder_checks", args.data)
    write_results(results, args.out or out, markdown)


def markdown(r: dict) -> str:
    lines = [
        "# Image decoder: where the class-proportion error comes from",
        "",
        f"Device: {r['platform']}. Command: `{r['command']}`. "
        f"{'Fashion-MNIST' if r.get('data') == 'fashion-mnist' else 'Digit'} mixtures. "
        + (
            "{held-out} held-out and {training} training sets read, {images per set} images "
            "per set. ".format(**r["sets read"])
            if "sets read" in r
            else ""
        )
        + f"Default `train()` stopped at {r['fit']['steps']} steps. Images generated with "
        "the default sampler (DDIM 50, "
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
