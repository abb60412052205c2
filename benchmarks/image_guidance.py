"""The image sampler's guidance, screened on digits and Fashion-MNIST together.

``ImageGDEModel.sample`` guides with classifier-free guidance of a chosen scale over a
chosen part of the diffusion time (0 the clean image, 1 pure noise). Guidance near pure
noise decides which class an image becomes; later it sharpens the image. This script
reads, for each setting below, the images generated from held-out sets' embeddings of the
model trained with the default ``train()`` on each data set (as ``images.py``: 320 sets,
seed 0; ``--models DIR`` loads the models ``images.py --models DIR`` kept), with the
readers of ``images.py``: the class proportions a logistic-regression classifier reads
(L1 to the set's true weights, 0-2, and the share of images read as a class the set does
not hold) and the debiased Sinkhorn divergence to half of the set's real images (top 50
pixel PCs) as a ratio to the real-vs-real floor. The same seed, sets and images for every
setting, so the settings differ only by the sampler. Then ``model.tune_guidance()``
chooses among its default candidates from the model's validation sets alone (no labels,
no held-out sets): the table marks its choice. With ``--models``, each setting's scores
are kept in the model's folder and a re-run reads them.

Writes ``benchmarks/results/image_guidance.{json,md}``:

    python benchmarks/image_guidance.py --models DIR --fashion-mnist-path PATH \
        --sets-every 1 4        # every digits set, every 4th Fashion-MNIST set
    python benchmarks/image_guidance.py --quick   # every step, in minutes
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np
import scvi
import torch
from default_training import command, write_results
from image_sets import DATA, kept, load_sets, model_folder, readers, score_sets, train_or_load

from gde.image._guidance import describe

# (scale, interval): interval None is the whole diffusion time
SETTINGS = [
    (1.0, None),
    (2.0, (0.25, 0.75)),
    (3.0, (0.25, 0.75)),
    (1.5, None),
    (2.0, None),
    (3.0, None),
    (2.0, (0.0, 0.75)),
    (3.0, (0.0, 0.75)),
    (1.5, (0.25, 1.0)),
    (2.0, (0.25, 1.0)),
]


def read_generated(model, adata, sets, weights, classifier, basis, n, **sample_kw) -> dict:
    """Mean class-proportion L1, absent-class share and Sinkhorn (and its floor) over ``sets``."""
    scores = score_sets(model, adata, sets, weights, classifier, basis, n, **sample_kw)
    out = scores.mean().round(4).to_dict()
    out["sinkhorn ratio to floor"] = round(out["sinkhorn generated"] / out["sinkhorn floor"], 3)
    return out


def screen(name: str, args, sets_every: int) -> dict:
    scvi.settings.seed = 0
    kw = {"n_sets": 24, "n_images_per_set": 40} if args.quick else {"n_sets": 320}
    adata, info = load_sets(name, args.fashion_mnist_path, **kw)
    weights, split = info["weights"], info["sets"]["split"]
    held = list(split.index[split == "held_out"])[::sets_every]
    is_train = np.asarray(adata.obs["split"] == "train")
    _, classifier, basis = readers(adata, is_train)
    max_steps = 20 if args.quick else None
    saved = model_folder(args.models, name)
    model, fit, _ = train_or_load(adata[is_train].copy(), max_steps, saved)
    n = 20 if args.quick else args.n_images
    rows = {}
    for scale, interval in SETTINGS:
        label = describe(scale, interval)
        rows[label] = kept(
            saved,
            f"guidance screen, {label}, {len(held)} sets x {n}",
            lambda s=scale, i=interval: read_generated(
                model, adata, held, weights, classifier, basis, n,
                guidance_scale=s, guidance_interval=i,
            ),
        )  # fmt: skip
        print(name, label, rows[label], flush=True)
    # the model's own choice, from its validation sets (no labels, no held-out sets)
    start = time.perf_counter()
    scores = model.tune_guidance(n_images=8 if args.quick else 32)
    tuned = {
        "validation sets": len(model.validation_sets_),
        "images per set": 8 if args.quick else 32,
        "seconds": round(time.perf_counter() - start, 1),
        "sinkhorn": scores["sinkhorn"].round(4).to_dict(),
        "chosen": str(scores.index[scores["chosen"]][0]),
    }
    print(name, "tune_guidance", tuned, flush=True)
    read = {"held-out sets read": len(held), "images per set": n}
    return {"steps": fit["steps"], **read, "rows": rows, "tune_guidance": tuned}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small run, every step runs")
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=list(DATA))
    parser.add_argument(
        "--sets-every", type=int, nargs="+", default=[1], help="per data set: read every N-th"
    )
    parser.add_argument("--n-images", type=int, default=50, help="generated per set")
    parser.add_argument(
        "--fashion-mnist-path", default=None, help="folder of the Fashion-MNIST files"
    )
    parser.add_argument("--models", default=None, help="images.py's --models folder")
    parser.add_argument("--out", default="benchmarks/results/image_guidance")
    args = parser.parse_args(argv)
    if len(args.sets_every) not in (1, len(args.data)):
        parser.error("--sets-every takes one number, or one per data set")
    every = args.sets_every * len(args.data) if len(args.sets_every) == 1 else args.sets_every
    warnings.filterwarnings("ignore")
    results = {
        "platform": f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
        "command": command("benchmarks/image_guidance.py", argv),
        "data": {name: screen(name, args, e) for name, e in zip(args.data, every, strict=True)},
    }
    write_results(results, args.out, markdown)


def markdown(r: dict) -> str:
    names = {"digits": "digits", "fashion-mnist": "Fashion-MNIST"}
    lines = [
        "# Image sampler: guidance screened on held-out sets",
        "",
        f"Device: {r['platform']}. Command: `{r['command']}`. DDIM 50 steps; guidance "
        "scale over a part of the diffusion time (0 clean, 1 pure noise). Proportion L1: "
        "classifier-read class proportions against the set's true weights (0-2); absent: "
        "share of images read as a class the set does not hold; Sinkhorn: to half of the "
        "set's real images, as a ratio to the real-vs-real floor (top 50 pixel PCs).",
        "",
    ]
    data = r["data"]
    head, rule = "| guidance |", "|---|"
    for name in data:
        head += f" {names[name]} L1 | absent | Sinkhorn × floor |"
        rule += "---|---|---|"
    lines += [head, rule]
    for label in next(iter(data.values()))["rows"]:
        line = f"| {label} |"
        for d in data.values():
            row = d["rows"][label]
            mark = "**" if d["tune_guidance"]["chosen"] == label else ""
            line += (
                f" {mark}{row['proportion L1']:.3f}{mark} | {row['absent-class share']:.3f} |"
                f" {row['sinkhorn ratio to floor']:.2f} |"
            )
        lines.append(line)
    lines.append("")
    for name, d in data.items():
        t = d["tune_guidance"]
        scores = ", ".join(f"{k} {v:.4g}" for k, v in t["sinkhorn"].items())
        lines += [
            f"{names[name]}: model from the default `train()` ({d['steps']} steps); "
            f"{d['held-out sets read']} held-out sets, {d['images per set']} images each. "
            f"`model.tune_guidance()` on its {t['validation sets']} validation sets "
            f"({t['images per set']} images per set and candidate, {t['seconds']:.0f} s) "
            f"chose **{t['chosen']}** (bold above); its Sinkhorn per candidate: {scores}.",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
