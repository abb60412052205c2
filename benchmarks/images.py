"""Sets of images: gde.image against the pixel-mean and kernel-mean-embedding baselines.

Data: class mixtures of real images, the GDE paper's protocol (each set mixes 3 of 10
classes with Dirichlet(1) weights, 100 images per set; held-out sets have their own
mixtures and draw from images no training set uses): scikit-learn's 8×8 digits
(``gde.datasets.digit_sets``) and 28×28 Fashion-MNIST (``gde.datasets.fashion_mnist_sets``;
Debian package ``dataset-fashion-mnist``). ``ImageGDEModel`` trains with its default
``train()`` on the training sets; the kernel-mean-embedding baseline is the same model
with a fixed random-Fourier-feature encoder of the pixels (``set_encoder="kme"``) and
the same U-Net decoder. On the held-out sets:

- Spearman between latent distances and the ground truth (the mixture W2 between the
  sets' class weights, see ``digit_sets``), for gde, gde untrained (its mean path: a
  pixel-mean pseudobulk), the pixel-mean pseudobulk (``gde.tl.pixel_mean_embedding``)
  and the KME encoder; and three references that are not methods: the exact W2 between
  the sets in pixels and in the model's W2 space, and the ground truth's own formula on
  each set's realised class shares (labels known: the ceiling that finite sets leave);
- generation, ``--n-generate`` images from each held-out set's embedding (DDIM, 50
  steps; with the guidance that ``tune_guidance()`` chose on the model's own validation
  sets, as a user's model samples after it; and, in the same run, with the untuned
  default, 2 over the middle half of the diffusion time, and without guidance): the
  class proportions read by a logistic-regression classifier
  trained on the training sets' real images (its accuracy on the held-out images is
  reported), L1 to the set's true weights (0-2), against predicting the training sets'
  average proportions, the sets' own real images read by the classifier (the floor), and
  a generator that reproduced each set exactly (``--n-generate`` of its own images
  redrawn with replacement: the floor plus the generated images' own sampling); the same
  for gde from ``--n-generate-more`` images per set (the generated distribution's
  proportions, with little of the generated images' own sampling error); debiased
  Sinkhorn divergence (squared units of the feature space, the top 50 principal
  components of the training images' pixels in [0, 1]) between the generated images and
  half B of the set's real images, against the floor of half A vs half B (as many images
  each);
- speed: images per second read by the set encoder in training, and generated (DDIM 50).

The geometry needs many training sets (``benchmarks/image_training_sets.py``): with 60,
the encoder learns those sets; the default 320 sets train on 240.

    python benchmarks/images.py            # full run
    python benchmarks/images.py --quick    # minutes; every step runs
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scvi
from default_training import command, device_name, write_results
from image_sets import (
    DATA,
    kept,
    load_sets,
    model_folder,
    readers,
    score_sets,
    train_or_load,
)

import gde
from gde._ot import exact_w2_matrix, transport_cost
from gde._pca import pca, project
from gde.image._guidance import DEFAULT_GUIDANCE, describe

W2_COMPS = 50  # ImageGDEModel's default w2_n_comps


def _tuned(model, saved: Path | None) -> dict:
    """``model.tune_guidance()`` on its validation sets: the choice, its time and scores.

    With ``saved``, the tuned model is saved there again, and a re-run reads the record.
    """

    def tune() -> dict:
        start = time.perf_counter()
        table = model.tune_guidance()
        if saved is not None:
            model.save(str(saved), overwrite=True)
        return {
            "chosen": str(table.index[table["chosen"]][0]),
            "seconds": round(time.perf_counter() - start, 1),
            "validation sinkhorn": table["sinkhorn"].round(3).to_dict(),
        }

    return kept(saved, "guidance", tune)


def _generation(
    model, adata, held, weights, classifier, basis, args, n_images=None, **sample_kw
) -> dict:
    """Class-proportion L1 and Sinkhorn to real half B, per held-out set, averaged.

    ``n_images`` per set (default ``args.n_generate``); ``sample_kw``: sampler options
    (the model's defaults when empty).
    """
    n_images = n_images or args.n_generate
    start = time.perf_counter()
    scores = score_sets(model, adata, held, weights, classifier, basis, n_images, **sample_kw)
    per_s = n_images * len(held) / (time.perf_counter() - start)
    out = scores.drop(columns="absent-class share").mean().round(4).to_dict()
    out["sinkhorn ratio to floor"] = round(out["sinkhorn generated"] / out["sinkhorn floor"], 2)
    out["sample_images_per_s"] = round(per_s, 1)
    out["images per set"] = n_images
    return out


def _exact_copy_error(read, weights, classes, n: int, n_draws: int = 20) -> float:
    """Proportion L1 of a generator that reproduces each set exactly: a reference.

    Draws ``n`` images (as many as are generated per set) with replacement from the set's
    own real images, whose classes the classifier read as ``read`` (one array per set);
    averaged over ``n_draws`` draws. Generating ``n`` images adds their own sampling
    error to the set's, so this sits above the real images' floor.
    """
    rng = np.random.default_rng(0)
    errors = [
        gde.metrics.class_proportion_error(rng.choice(labels, n), w, classes)
        for labels, (_, w) in zip(read, weights.iterrows(), strict=True)
        for _ in range(n_draws)
    ]
    return round(float(np.mean(errors)), 4)


def _label_oracle(adata, held, info) -> pd.DataFrame:
    """The ground truth's formula applied to each held-out set's realised class shares.

    What a method that read every image's class without error would reach: the ceiling
    that the sets' finite sampling leaves (a reference, not a method).
    """
    shares = pd.crosstab(adata.obs["set"], adata.obs["label"], normalize="index")
    shares = shares.reindex(index=held, columns=info["weights"].columns, fill_value=0.0)
    cost = info["class_w2"].to_numpy()
    out = pd.DataFrame(0.0, index=held, columns=held)
    for i, s in enumerate(held):
        for t in held[i + 1 :]:
            d = np.sqrt(transport_cost(cost, shares.loc[s], shares.loc[t]))
            out.loc[s, t] = out.loc[t, s] = d
    return out


def dataset(name: str, args) -> dict:
    scvi.settings.seed = args.seed
    kw = {"n_images_per_set": 40} if args.quick else {}
    adata, info = load_sets(name, args.fashion_mnist_path, args.seed, n_sets=args.n_sets, **kw)
    truth, weights = info["distance"], info["weights"]
    held = info["sets"].index[info["sets"]["split"] == "held_out"]
    mask = np.isin(truth.index, held)
    pairs = mask[:, None] & mask[None, :]
    is_train = np.asarray(adata.obs["split"] == "train")
    train = adata[is_train].copy()
    pixels, classifier, basis = readers(adata, is_train)
    accuracy = float(classifier.score(pixels[~is_train], adata.obs["label"][~is_train]))
    average = weights.loc[info["sets"]["split"] == "train"].mean()
    classes = list(weights.columns)
    # the floor of the proportion L1: the classifier on each set's own real images, whose
    # class shares differ from the weights by sampling and by the classifier's errors
    held_rows = [np.flatnonzero(np.asarray(adata.obs["set"] == s)) for s in held]
    read = [classifier.predict(pixels[r]) for r in held_rows]
    real_l1 = [
        gde.metrics.class_proportion_error(p, weights.loc[s], classes)
        for s, p in zip(held, read, strict=True)
    ]
    out = {
        "classifier accuracy (held-out images)": round(accuracy, 3),
        "proportion L1, training-average proportions": round(
            float(np.abs(weights.loc[held] - average).sum(1).mean()), 4
        ),
        "proportion L1, real images of the set": round(float(np.mean(real_l1)), 4),
        # keyed by the number of images drawn per set
        "proportion L1, exact copy of the set": {
            str(n): _exact_copy_error(read, weights.loc[held], classes, n)
            for n in (args.n_generate, args.n_generate_more)
            if n
        },
    }
    rho = gde.metrics.distance_spearman
    pixel = gde.tl.pixel_mean_embedding(adata, set_key="set", key_added=None)
    out["spearman"] = {"pixel-mean pseudobulk": rho(pixel.loc[truth.index], truth, pairs)}
    # the geometry the W2-matching term follows, computed exactly: a reference, not a method
    for label, feats in (
        ("exact W2 between the sets, pixels (reference)", pixels),
        (
            f"exact W2, top {W2_COMPS} pixel PCs (reference)",
            project(pixels, *pca(pixels[is_train], W2_COMPS)),
        ),
    ):
        w2 = pd.DataFrame(exact_w2_matrix([feats[r] for r in held_rows]), index=held, columns=held)
        out["spearman"][label] = rho(w2, truth, precomputed=True)
    out["spearman"]["labels known: the truth's formula on each set's own class shares"] = rho(
        _label_oracle(adata, held, info), truth, precomputed=True
    )
    models = {
        "gde": {},
        "KME + same decoder": {
            "set_encoder": "kme",
            "mean_path": False,
            "w2_weight": 0.0,
            "n_features": 0,
        },
    }
    for label, model_kw in models.items():
        scvi.settings.seed = args.seed
        untrained = adata if label == "gde" else None
        saved = model_folder(args.models, name, label.split(" ")[0])
        model, fit, start = train_or_load(
            train.copy(), args.max_steps, saved, untrained, **model_kw
        )
        if start is not None:
            out["spearman"]["gde untrained (mean path)"] = rho(
                start.loc[truth.index], truth, pairs
            )
        emb = model.get_distribution_embeddings(adata, key_added=None)
        out["spearman"][label] = rho(emb.loc[truth.index], truth, pairs)
        fit["guidance"] = _tuned(model, saved)
        scoring = (model, adata, held, weights, classifier, basis, args)
        scale, interval = DEFAULT_GUIDANCE
        samplers = {
            "generation": {},  # the tuned guidance, the model's default from now on
            "generation, untuned guidance": {
                "guidance_scale": scale,
                "guidance_interval": interval,
            },
            "generation, no guidance": {"guidance_scale": 1.0},
        }
        if args.n_generate_more and label == "gde":
            # many images per set: the proportions of the generated distribution itself,
            # with little of the generated images' own sampling error
            samplers["generation, more images"] = {"n_images": args.n_generate_more}
        for key, sample_kw in samplers.items():
            fit[key] = kept(saved, key, lambda kw=sample_kw, sc=scoring: _generation(*sc, **kw))
        out[label] = fit
        print(label, json.dumps(fit), flush=True)
    return out


def markdown(results: dict) -> str:
    lines = [
        "# Sets of images: gde.image against pixel-mean and KME baselines",
        "",
        f"Device: {results['platform']}. Command: `{results['command']}`.",
        "",
        "Held-out mixtures (3 of 10 classes, Dirichlet(1) weights). Spearman(latent "
        "distance, ground-truth mixture W2) over held-out pairs. Generation from each "
        "held-out set's embedding (DDIM 50) with the guidance `tune_guidance()` chose on "
        "the model's validation sets; also with the untuned default, "
        f"{describe(*DEFAULT_GUIDANCE)}, and without guidance: L1 between the class "
        "proportions a classifier reads and the true weights (0-2); debiased Sinkhorn "
        "divergence to the set's real images in the top 50 principal components of the "
        "training pixels, against real-vs-real (floor).",
        "",
    ]
    for name, r in results["data"].items():
        sp = r["spearman"]
        lines += [
            f"## {name}",
            "",
            "| embedding | Spearman |",
            "|---|---|",
            *[f"| {k} | {v:.3f} |" for k, v in sp.items()],
            "",
            f"Classifier accuracy on held-out images: "
            f"{r['classifier accuracy (held-out images)']:.3f}. Proportion L1 when predicting "
            f"the training sets' average proportions: "
            f"{r['proportion L1, training-average proportions']:.3f}; read from the sets' own "
            f"real images (the floor: sampling and classifier errors): "
            f"{r['proportion L1, real images of the set']:.3f}; a generator that reproduced "
            f"each set exactly (its own images redrawn with replacement), "
            + "; ".join(
                f"drawing {n} images: {v:.3f}"
                for n, v in r["proportion L1, exact copy of the set"].items()
            )
            + ".",
            "",
            "| decoder from | proportion L1 | Sinkhorn gen / floor (ratio) | steps | train s "
            "| images/s train | images/s sample |",
            "|---|---|---|---|---|---|---|",
        ]
        for model in ("gde", "KME + same decoder"):
            more = r[model].get("generation, more images", {}).get("images per set")
            tuned = r[model].get("guidance", {}).get("chosen", describe(*DEFAULT_GUIDANCE))
            samplers = [(f", tuned guidance: {tuned}", "generation")]
            samplers += [(", untuned guidance", "generation, untuned guidance")]
            samplers += [(", no guidance", "generation, no guidance")]
            samplers += [(f", {more} images per set", "generation, more images")]
            for tail, key in samplers:
                if key not in r[model]:
                    continue
                m, g = r[model], r[model][key]
                lines.append(
                    f"| {model}{tail} | {g['proportion L1']:.3f} | "
                    f"{g['sinkhorn generated']:.2f} / {g['sinkhorn floor']:.2f} "
                    f"({g['sinkhorn ratio to floor']:.2f}) | {m['steps']} "
                    f"| {m['train_seconds']:.0f} | {m['train_images_per_s']:.0f} "
                    f"| {g['sample_images_per_s']:.0f} |"
                )
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small run, every step runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--n-sets", type=int, default=320, help="sets per data set, a quarter held out"
    )
    parser.add_argument("--n-generate", type=int, default=100)
    parser.add_argument(
        "--n-generate-more",
        type=int,
        default=1000,
        help="images per set of a second gde generation, default sampler (0: none)",
    )
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=list(DATA))
    parser.add_argument(
        "--fashion-mnist-path", default=None, help="folder of the Fashion-MNIST files"
    )
    parser.add_argument("--max-steps", type=int, default=None, help="default: train()'s own")
    parser.add_argument(
        "--models",
        default=None,
        help="folder to keep training checkpoints, trained models and generation scores in: "
        "a re-run of the command resumes where the last one stopped",
    )
    parser.add_argument("--out", default="benchmarks/results/images")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_sets, args.n_generate, args.max_steps = 24, 20, args.max_steps or 20
        args.n_generate_more = min(args.n_generate_more, 40)
    warnings.filterwarnings("ignore")
    results = {
        "platform": device_name(),
        "command": command("benchmarks/images.py", argv),
        "data": {},
    }
    for name in args.data:
        results["data"][name] = dataset(name, args)
        print(name, json.dumps(results["data"][name]["spearman"]), flush=True)
    write_results(results, args.out, markdown)


if __name__ == "__main__":
    main()
