"""Does the image model's set embedding hold the sets' class weights? Linear probes.

Images generated from a held-out set's embedding (``benchmarks/images.py``) show class
proportions further from the set's true weights than its own images do. This script asks
whether the weights are in the embedding to begin with. It takes the ``ImageGDEModel``
of ``images.py`` on the digit mixtures (``digit_sets(320, seed=0)``, default ``train()``,
seed 0; loaded from ``--models`` where ``images.py --models`` kept it, else trained) and
measures, on the held-out sets (``--data fashion-mnist``: the same on 28×28 Fashion-MNIST,
``fashion_mnist_sets(320, seed=0)``):

- set level: a ridge regression fitted on the training sets from an embedding to the
  class weights, applied to the held-out sets (clipped at 0, renormalised): L1 to the
  true weights (0-2), for the gde embedding, its untrained start (the mean path) and the
  pixel-mean pseudobulk; against the sets' realised class shares (labels known: the
  sampling of 100 images) and a pixel classifier's reading of each set's real images;
- element level: the accuracy of a logistic regression (fitted on the training images)
  that reads an image's class from what the set encoder receives for it: the pixels (the
  reference part, standardised) and the learned featurizer's features.

Writes ``benchmarks/results/image_embedding_probe.{json,md}`` (Fashion-MNIST:
``image_embedding_probe_fashion_mnist``):

    python benchmarks/image_embedding_probe.py --models DIR   # a minute with images.py's model
    python benchmarks/image_embedding_probe.py --data fashion-mnist --models DIR
    python benchmarks/image_embedding_probe.py --quick        # every step, small
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
import scvi
import torch
from default_training import command, device_name, write_results
from image_sets import DATA, load_sets, model_folder, readers, results_name, train_or_load
from sklearn.linear_model import LogisticRegression, RidgeCV

import gde
from gde._constants import GDE_KEYS


def _probe_l1(emb: pd.DataFrame, weights: pd.DataFrame, train, held) -> float:
    """Held-out L1 of a ridge map from embeddings to class weights fitted on ``train``."""
    probe = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(emb.loc[train], weights.loc[train])
    pred = np.clip(probe.predict(emb.loc[held]), 0.0, None)
    pred /= np.maximum(pred.sum(1, keepdims=True), 1e-12)
    return round(float(np.abs(pred - weights.loc[held].to_numpy()).sum(1).mean()), 4)


def _accuracy(features: np.ndarray, labels: np.ndarray, is_train: np.ndarray) -> float:
    clf = LogisticRegression(max_iter=2000).fit(features[is_train], labels[is_train])
    return round(float(clf.score(features[~is_train], labels[~is_train])), 3)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small run, every step runs")
    parser.add_argument("--models", default=None, help="images.py's --models folder")
    parser.add_argument("--data", default="digits", choices=list(DATA))
    parser.add_argument(
        "--fashion-mnist-path", default=None, help="folder of the Fashion-MNIST files"
    )
    parser.add_argument("--out", default=None, help="default: results/image_embedding_probe")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    scvi.settings.seed = 0
    kw = {"n_sets": 24, "n_images_per_set": 40} if args.quick else {"n_sets": 320}
    adata, info = load_sets(args.data, args.fashion_mnist_path, **kw)
    weights, split = info["weights"], info["sets"]["split"]
    train_sets, held = split.index[split == "train"], split.index[split == "held_out"]
    is_train = np.asarray(adata.obs["split"] == "train")
    saved = model_folder(args.models, args.data)
    model, fit, start = train_or_load(
        adata[is_train].copy(), 20 if args.quick else None, saved, untrained=adata
    )
    pixels, classifier, _ = readers(adata, is_train)
    labels = adata.obs["label"].to_numpy()
    classes = list(weights.columns)
    shares = pd.crosstab(adata.obs["set"], adata.obs["label"], normalize="index")
    shares = shares.reindex(index=held, columns=classes, fill_value=0.0)
    read = [
        gde.metrics.class_proportion_error(
            classifier.predict(pixels[np.asarray(adata.obs["set"] == s)]), weights.loc[s], classes
        )
        for s in held
    ]
    embeddings = {
        "gde": model.get_distribution_embeddings(adata, key_added=None),
        "gde untrained (mean path)": start,
        "pixel-mean pseudobulk": gde.tl.pixel_mean_embedding(adata, set_key="set", key_added=None),
    }
    sets = {
        f"ridge probe of {k}": _probe_l1(e, weights, train_sets, held)
        for k, e in embeddings.items()
    }
    sets["realised class shares (labels known)"] = round(
        float(np.abs(shares.to_numpy() - weights.loc[held].to_numpy()).sum(1).mean()), 4
    )
    sets["pixel classifier on the set's real images"] = round(float(np.mean(read)), 4)

    module = model.module.eval()
    with torch.no_grad():
        x = module.input_counts({GDE_KEYS.X_KEY: torch.as_tensor(adata.obsm["X_image"])})
        feats = module.transform(x.float(), torch.zeros(adata.n_obs, 1, dtype=torch.long))
    feats = feats.numpy()
    n_ref = module.n_reference
    elements = {
        "pixels (the encoder's reference input)": _accuracy(feats[:, :n_ref], labels, is_train),
        f"learned featurizer ({feats.shape[1] - n_ref} features)": _accuracy(
            feats[:, n_ref:], labels, is_train
        ),
        "both (the encoder's input)": _accuracy(feats, labels, is_train),
    }
    results = {
        "platform": device_name(),
        "command": command("benchmarks/image_embedding_probe.py", argv),
        "data": args.data,
        "steps": fit["steps"],
        "held-out proportion L1": sets,
        "held-out image class accuracy": elements,
    }
    out = results_name("benchmarks/results/image_embedding_probe", args.data)
    write_results(results, args.out or out, markdown)


def markdown(r: dict) -> str:
    lines = [
        "# Does the image embedding hold the class weights?",
        "",
        f"Device: {r['platform']}. Command: `{r['command']}`. "
        f"{'Fashion-MNIST' if r.get('data') == 'fashion-mnist' else 'Digit'} mixtures, the gde "
        f"model of `images.py` (default `train()`, {r['steps']} steps).",
        "",
        "| held-out sets: class weights from | L1 to the true weights |",
        "|---|---|",
        *[f"| {k} | {v:.3f} |" for k, v in r["held-out proportion L1"].items()],
        "",
        "| held-out images: class read linearly from | accuracy |",
        "|---|---|",
        *[f"| {k} | {v:.3f} |" for k, v in r["held-out image class accuracy"].items()],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
