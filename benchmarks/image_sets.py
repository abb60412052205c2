"""The image checks' shared pieces: their data, fixed readers, kept models and scoring.

Used by ``images.py``, ``image_decoder_checks.py``, ``image_guidance.py`` and
``image_embedding_probe.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from default_training import train_default
from sklearn.linear_model import LogisticRegression

import gde
from gde._pca import pca, project
from gde.image import ImageGDEModel

DATA = {"digits": gde.datasets.digit_sets, "fashion-mnist": gde.datasets.fashion_mnist_sets}
INFO_KEY = {"digits": "digit_sets", "fashion-mnist": "fashion_mnist_sets"}


def load_sets(name: str, path: str | None = None, seed: int = 0, **kw):
    """The benchmark's sets of data set ``name`` and their ground truth.

    ``path``: the folder of the Fashion-MNIST files (ignored for digits); ``kw``: more
    keywords of the data set's function. Returns the AnnData and its ``uns`` entry.
    """
    if name == "fashion-mnist" and path:
        kw["path"] = path
    adata = DATA[name](seed=seed, **kw)
    return adata, adata.uns[INFO_KEY[name]]


def readers(adata, is_train: np.ndarray):
    """The fixed readers of images, fitted on the training images' pixels in [0, 1].

    Returns the pixels ``(n, H * W)``, a logistic-regression classifier of their
    classes and the basis of their top 50 principal components (the Sinkhorn features).
    """
    pixels = adata.obsm["X_image"].reshape(adata.n_obs, -1)
    labels = adata.obs["label"].to_numpy()
    classifier = LogisticRegression(max_iter=1000).fit(pixels[is_train], labels[is_train])
    return pixels, classifier, pca(pixels[is_train], 50)


def model_folder(models: str | None, name: str, label: str = "gde") -> Path | None:
    """Where ``--models`` keeps model ``label`` of data set ``name`` (None: not kept)."""
    return None if models is None else Path(models) / name / label


def results_name(base: str, name: str) -> str:
    """The results file of a check on data set ``name``: digits keep the bare name."""
    return base if name == "digits" else f"{base}_{name.replace('-', '_')}"


def train_or_load(adata, max_steps: int | None, saved: Path | None, untrained=None, **model_kw):
    """Train with the default ``train()``; ``untrained``: AnnData to embed before training.

    With ``saved`` (a folder), a model and training record already there are loaded
    instead, and a new one is written there; a training cut short resumes from its
    checkpoint there.
    """
    ImageGDEModel.setup_anndata(adata, set_key="set")
    if saved is not None:
        saved.mkdir(parents=True, exist_ok=True)
    if saved is not None and (saved / "training.json").exists():
        record = json.loads((saved / "training.json").read_text())
        start = record.pop("untrained embedding", None)
        model = ImageGDEModel.load(str(saved), adata=adata)
        return model, record, None if start is None else pd.DataFrame(start)
    model = ImageGDEModel(adata, **model_kw)
    info, start_emb = train_default(model, max_steps, "images", untrained, resume=saved)
    if saved is not None:
        model.save(str(saved), overwrite=True)
        record = dict(info)
        if start_emb is not None:
            record["untrained embedding"] = start_emb.to_dict()
        (saved / "training.json").write_text(json.dumps(record))
    return model, info, start_emb


def kept(saved: Path | None, key: str, compute) -> dict:
    """``compute()``, or its result kept in ``saved`` by an earlier run of the command."""
    file = None if saved is None else saved / f"{key}.json"
    if file is not None and file.exists():
        return json.loads(file.read_text())
    result = compute()
    if file is not None:
        file.write_text(json.dumps(result))
    return result


def class_reading(pred, weight: pd.Series, classes) -> dict:
    """Proportion L1 and absent-class share of the classes ``pred`` read in one set's images.

    ``weight``: the set's true class weights; the absent-class share is the fraction of
    images read as a class the set does not hold.
    """
    return {
        "proportion L1": gde.metrics.class_proportion_error(pred, weight, classes),
        "absent-class share": float(np.mean(~np.isin(pred, weight.index[weight > 0]))),
    }


def score_generated(fake, real, pred, weight, classes, basis, rng) -> dict:
    """One set's generated images ``fake``: :func:`class_reading` and Sinkhorn to real half B.

    ``pred``: the classes a classifier reads in ``fake``; ``weight``: the set's true
    class weights. The real images are split at random (``rng``) into halves A and B;
    the floor is A against B, as many images each as are compared.
    """
    order = rng.permutation(len(real))
    a, b = real[order[: len(real) // 2]], real[order[len(real) // 2 :]]
    m = min(len(a), len(b), len(fake))
    feats = [project(x[:m].reshape(m, -1), *basis) for x in (fake, a, b)]
    return {
        **class_reading(pred, weight, classes),
        "sinkhorn generated": gde.metrics.sinkhorn_divergence(feats[0], feats[2]),
        "sinkhorn floor": gde.metrics.sinkhorn_divergence(feats[1], feats[2]),
    }


def score_sets(model, adata, sets, weights, classifier, basis, n, **sample_kw) -> pd.DataFrame:
    """``n`` images generated from each set's embedding (seed 0), scored: one row per set.

    The columns of :func:`score_generated`.
    """
    gen = model.sample(sets=list(sets), adata=adata, n_images=n, seed=0, **sample_kw)
    classes = list(weights.columns)
    rng = np.random.default_rng(0)
    rows = []
    for s in sets:
        fake = gen.obsm["X_image"][np.asarray(gen.obs["set"] == s)]
        real = adata.obsm["X_image"][np.asarray(adata.obs["set"] == s)]
        pred = classifier.predict(fake.reshape(len(fake), -1))
        w = weights.loc[s]
        rows.append(score_generated(fake, real, pred, w, classes, basis, rng))
    return pd.DataFrame(rows, index=list(sets))
