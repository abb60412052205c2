"""How many training sets the image model needs for its geometry to carry over to new sets.

Trains ``ImageGDEModel`` on the training sets of ``gde.datasets.digit_sets(n_sets, seed=0)``
(three quarters of them) for a fixed number of steps, without early stopping, then scores
Spearman between latent distances and the ground truth on the held-out sets and on 40 of
the training sets, beside the exact W2 between the sets in the top 20 pixel principal
components (the model's W2 space when the stored lines were measured; it is 50 now) and
the pixel-mean pseudobulk. One configuration per call;
each call appends one JSON line to ``benchmarks/results/image_training_sets.jsonl``:

    python benchmarks/image_training_sets.py 80 600          # 60 training sets
    python benchmarks/image_training_sets.py 80 1800 '{"w2_weight": 10}'
    python benchmarks/image_training_sets.py 320 1800        # 240 training sets

    python benchmarks/image_training_sets.py 80 1800 '{}' '{"mix_sets": 0.5}' 1

The stored lines were measured when the model's defaults were ``w2_n_comps=20``, no
debias, no moving average and no mixing: pass them (``'{"w2_n_comps": 20, "w2_debias":
false}' '{"mix_sets": 0, "weight_ema": 0}'``) to compare a new line with them.


The third argument is a JSON object of ``ImageGDEModel`` arguments, the fourth one of
``train()`` arguments, the fifth the training seed (``scvi.settings.seed``: the split
into training and validation sets and the draws; 0 by default). The data are the same
for every seed. ``docs/images.md``
tabulates the lines.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scvi
from scipy.spatial.distance import pdist, squareform
from scipy.stats import spearmanr

import gde
from gde._ot import exact_w2_matrix
from gde._pca import pca, project
from gde.image import ImageGDEModel

OUT = Path("benchmarks/results/image_training_sets.jsonl")


def main(argv: list[str]) -> dict:
    n_sets, steps = int(argv[0]), int(argv[1])
    kw = json.loads(argv[2]) if len(argv) > 2 else {}
    train_kw = json.loads(argv[3]) if len(argv) > 3 else {}
    seed = int(argv[4]) if len(argv) > 4 else 0
    warnings.filterwarnings("ignore")
    scvi.settings.seed = seed
    adata = gde.datasets.digit_sets(n_sets=n_sets, seed=0)
    info = adata.uns["digit_sets"]
    truth = info["distance"]
    held = list(info["sets"].index[info["sets"]["split"] == "held_out"])
    seen = list(info["sets"].index[info["sets"]["split"] == "train"])[:40]
    is_train = np.asarray(adata.obs["split"] == "train")
    pixels = adata.obsm["X_image"].reshape(adata.n_obs, -1).astype(float)
    pcs = project(pixels, *pca(pixels[is_train], 20))

    train = adata[is_train].copy()
    ImageGDEModel.setup_anndata(train, set_key="set")
    model = ImageGDEModel(train, **kw)
    start = time.time()
    model.train(max_steps=steps, early_stopping=False, **train_kw)
    out = {"n_sets": n_sets, "steps": steps, "kw": kw, "train": train_kw, "seed": seed}
    out["s"] = round(time.time() - start)
    emb = model.get_distribution_embeddings(adata, key_added=None)
    for label, sets in (("held", held), ("train", seen)):
        upper = np.triu_indices(len(sets), 1)
        latent = squareform(pdist(emb.loc[sets].to_numpy()))[upper]
        target = truth.loc[sets, sets].to_numpy()[upper]
        rows = [np.flatnonzero(np.asarray(adata.obs["set"] == s)) for s in sets]
        w2 = exact_w2_matrix([pcs[r] for r in rows])[upper]
        out[f"{label} rho truth"] = round(spearmanr(latent, target)[0], 3)
        out[f"{label} rho w2pc20"] = round(spearmanr(latent, w2)[0], 3)
        out[f"{label} w2 truth"] = round(spearmanr(w2, target)[0], 3)
    mean = gde.tl.pixel_mean_embedding(adata, set_key="set", key_added=None)
    upper = np.triu_indices(len(held), 1)
    out["pixel mean held"] = round(
        spearmanr(pdist(mean.loc[held].to_numpy()), truth.loc[held, held].to_numpy()[upper])[0],
        3,
    )
    return out


if __name__ == "__main__":
    result = main(sys.argv[1:])
    print(json.dumps(result), flush=True)
    with OUT.open("a") as f:
        f.write(json.dumps(result) + "\n")
