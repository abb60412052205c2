"""Sets of real images as class mixtures: scikit-learn's digits and Fashion-MNIST."""

from __future__ import annotations

import gzip
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from gde._ot import exact_w2, transport_cost

#: where Debian's ``dataset-fashion-mnist`` package puts the files
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_GROUND_TRUTH_DOC = """
    Ground truth: each set is a mixture of class populations ``P_k`` with weights
    ``w_s``; the distance between sets ``s`` and ``t`` is the mixture Wasserstein
    distance ``sqrt(min_π sum_kl π_kl W2²(P_k, P_l))`` over couplings ``π`` of ``w_s``
    and ``w_t``: W2 restricted to plans that move whole classes onto classes, an upper
    bound on the W2 between the two mixtures, and equal to it when classes are far
    apart. ``W2²(P_k, P_l)`` is the exact squared W2 between the images of the two
    classes (pixels scaled to [0, 1]; at most ``n_ground_truth`` images per class).
"""


def _class_w2(images, labels, n_classes: int, n_max: int, scale: float, rng) -> np.ndarray:
    """Exact W2² between the (scaled) images of every two classes, ``(k, k)``."""
    pools = []
    for k in range(n_classes):
        rows = np.flatnonzero(labels == k)
        rows = rng.choice(rows, min(n_max, len(rows)), replace=False)
        pools.append(images[rows].reshape(len(rows), -1).astype(np.float64) / scale)
    out = np.zeros((n_classes, n_classes))
    for k in range(n_classes):
        for j in range(k + 1, n_classes):
            out[k, j] = out[j, k] = exact_w2(pools[k], pools[j], squared=True)
    return out


def class_mixture_sets(
    images: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    n_sets: int = 60,
    n_images_per_set: int = 100,
    n_classes_per_set: int = 3,
    alpha: float = 1.0,
    held_out_fraction: float = 0.25,
    held_out_images: float = 0.25,
    n_ground_truth: int = 500,
    seed: int = 0,
    name: str = "image_sets",
) -> ad.AnnData:
    """Sets of labelled images whose class weights follow a Dirichlet (the GDE protocol).

    Each set picks ``n_classes_per_set`` classes at random, draws their weights from
    Dirichlet(``alpha``), and draws ``n_images_per_set`` images with those class
    proportions. A fraction ``held_out_images`` of each class's images is kept apart:
    held-out sets (``held_out_fraction`` of the sets, with their own mixtures) draw only
    from those, training sets only from the rest. Images are scaled to [0, 1] (uint8
    divided by 255, others by their maximum).
    {ground_truth}

    Parameters
    ----------
    images
        Array ``(n, H, W)`` or ``(n, C, H, W)``.
    labels
        Class of each image, ``0..len(class_names) - 1``.
    class_names
        Name of each class.
    n_sets, n_images_per_set, n_classes_per_set, alpha, held_out_fraction, seed
        As in :func:`digit_sets`.
    held_out_images
        Fraction of each class's images kept for the held-out sets.
    n_ground_truth
        Images per class used for the exact W2 between classes.
    name
        Key of ``uns`` for the sets' information.

    Returns
    -------
    AnnData laid out as :func:`digit_sets` returns it, with ``uns[name]``.
    """
    images, labels = np.asarray(images), np.asarray(labels).astype(int)
    n_classes = len(class_names)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels.")
    if n_sets < 2 or not 0 <= held_out_fraction < 1 or not 0 < held_out_images < 1:
        raise ValueError(
            "Need n_sets >= 2, 0 <= held_out_fraction < 1 and 0 < held_out_images < 1."
        )
    if not 1 <= n_classes_per_set <= n_classes or n_images_per_set < 1 or alpha <= 0:
        raise ValueError(
            f"Need 1 <= n_classes_per_set <= {n_classes}, n_images_per_set >= 1, alpha > 0."
        )
    rng = np.random.default_rng(seed)
    pools = {"train": {}, "held_out": {}}
    for k in range(n_classes):
        rows = rng.permutation(np.flatnonzero(labels == k))
        n_held = max(1, round(held_out_images * len(rows)))
        pools["held_out"][k], pools["train"][k] = rows[:n_held], rows[n_held:]
    names = [f"set_{i:0{len(str(n_sets - 1))}d}" for i in range(n_sets)]
    n_held_sets = round(held_out_fraction * n_sets)
    held = set(rng.choice(names, n_held_sets, replace=False)) if n_held_sets else set()
    weights = np.zeros((n_sets, n_classes))
    rows, set_of = [], []
    for i, set_name in enumerate(names):
        classes = rng.choice(n_classes, n_classes_per_set, replace=False)
        weights[i, classes] = rng.dirichlet(np.full(n_classes_per_set, alpha))
        counts = rng.multinomial(n_images_per_set, weights[i])
        pool = pools["held_out" if set_name in held else "train"]
        for k in np.flatnonzero(counts):
            source = pool[k]
            rows.append(rng.choice(source, counts[k], replace=counts[k] > len(source)))
            set_of += [set_name] * int(counts[k])
    rows = np.concatenate(rows)
    split = ["held_out" if s in held else "train" for s in names]
    obs = pd.DataFrame(
        {
            "set": pd.Categorical(set_of, categories=names),
            "label": pd.Categorical(np.asarray(class_names)[labels[rows]], categories=class_names),
            "split": pd.Categorical(
                ["held_out" if s in held else "train" for s in set_of],
                categories=["train", "held_out"],
            ),
            "source_index": rows,
        },
        index=[f"image_{i}" for i in range(len(rows))],
    )
    scale = 255.0 if images.dtype == np.uint8 else max(float(images.max()), 1e-12)
    class_w2 = _class_w2(images, labels, n_classes, n_ground_truth, scale, rng)
    distance = np.zeros((n_sets, n_sets))
    for i in range(n_sets):
        for j in range(i + 1, n_sets):
            cost = transport_cost(class_w2, weights[i], weights[j])
            distance[i, j] = distance[j, i] = np.sqrt(cost)
    index = pd.Index(names, name="set")
    scaled = images[rows].astype(np.float32) / np.float32(scale)
    adata = ad.AnnData(np.zeros((len(rows), 0), dtype=np.float32), obs=obs)
    adata.obsm["X_image"] = scaled
    adata.uns[name] = {
        "sets": pd.DataFrame({"split": split}, index=index),
        "weights": pd.DataFrame(weights, index=index, columns=list(class_names)),
        "distance": pd.DataFrame(distance, index=index, columns=index),
        "class_w2": pd.DataFrame(class_w2, index=list(class_names), columns=list(class_names)),
        "params": {
            "n_sets": n_sets,
            "n_images_per_set": n_images_per_set,
            "n_classes_per_set": n_classes_per_set,
            "alpha": alpha,
            "held_out_fraction": held_out_fraction,
            "held_out_images": held_out_images,
            "seed": seed,
        },
    }
    return adata


def digit_sets(
    n_sets: int = 60,
    n_images_per_set: int = 100,
    n_classes_per_set: int = 3,
    alpha: float = 1.0,
    held_out_fraction: float = 0.25,
    seed: int = 0,
) -> ad.AnnData:
    """Sets of real handwritten digits (scikit-learn's 1,797 8×8 images) as class mixtures.

    Each set picks ``n_classes_per_set`` of the 10 digits at random, draws their
    weights from Dirichlet(``alpha``), and draws ``n_images_per_set`` images with those
    proportions (the GDE paper's MNIST protocol: 3 classes, 100 images). A quarter of
    each digit's images is kept apart: held-out sets (``held_out_fraction`` of the sets,
    with their own mixtures) draw only from those, training sets only from the rest.
    {ground_truth}

    Parameters
    ----------
    n_sets
        Number of sets.
    n_images_per_set
        Images per set.
    n_classes_per_set
        Digits mixed in each set.
    alpha
        Concentration of the Dirichlet of the class weights.
    held_out_fraction
        Fraction of sets marked ``"held_out"``.
    seed
        Random seed.

    Returns
    -------
    AnnData with one row per image and an empty ``X``: ``obsm['X_image']`` (float32
    ``(n, 8, 8)`` in [0, 1]), ``obs['set']``, ``obs['label']`` (the digit),
    ``obs['split']`` and ``obs['source_index']`` (row in scikit-learn's data);
    ``uns['digit_sets']`` with ``'sets'`` (split), ``'weights'`` (sets × digits),
    ``'distance'`` (the ground truth, sets × sets), ``'class_w2'`` and ``'params'``.

    Examples
    --------
    >>> adata = gde.datasets.digit_sets(n_sets=20)
    >>> adata.uns["digit_sets"]["weights"].round(2).head(3)
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    return class_mixture_sets(
        digits.images.astype(np.float32) / 16.0,
        digits.target,
        [str(d) for d in range(10)],
        n_sets=n_sets,
        n_images_per_set=n_images_per_set,
        n_classes_per_set=n_classes_per_set,
        alpha=alpha,
        held_out_fraction=held_out_fraction,
        seed=seed,
        name="digit_sets",
    )


for _f in (class_mixture_sets, digit_sets):
    _f.__doc__ = _f.__doc__.replace("{ground_truth}", _GROUND_TRUTH_DOC)
del _f


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) as a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes.")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(shape))} values.")
    return values.reshape(shape)


def load_fashion_mnist(
    path: str | Path | None = None, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images (uint8 ``(n, 28, 28)``) and labels (``0..9``).

    Parameters
    ----------
    path
        Folder with the four IDX files (``train-images-idx3-ubyte.gz`` and so on,
        gzipped or not); by default where Debian's ``dataset-fashion-mnist`` package
        installs them, ``/usr/share/datasets/fashion-mnist``.
    split
        ``"train"`` (60,000 images) or ``"test"`` (10,000).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    folder = FASHION_MNIST_DIR if path is None else Path(path)
    stem = "train" if split == "train" else "t10k"
    found = {}
    for kind in ("images-idx3", "labels-idx1"):
        names = [f"{stem}-{kind}-ubyte.gz", f"{stem}-{kind}-ubyte"]
        hits = [folder / n for n in names if (folder / n).exists()]
        if not hits:
            raise FileNotFoundError(
                f"Fashion-MNIST file {names[0]} not found in {folder}. On Debian or Ubuntu: "
                "`sudo apt-get install dataset-fashion-mnist` (installs to "
                f"{FASHION_MNIST_DIR}); elsewhere download the four files from "
                "https://github.com/zalandoresearch/fashion-mnist and pass their folder as "
                "`path`."
            )
        found[kind] = _read_idx(hits[0])
    images, labels = found["images-idx3"], found["labels-idx1"]
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError(f"{folder}: {images.shape} images for {labels.shape} labels.")
    return images, labels.astype(np.int64)


def fashion_mnist_sets(
    n_sets: int = 60,
    n_images_per_set: int = 100,
    n_classes_per_set: int = 3,
    alpha: float = 1.0,
    held_out_fraction: float = 0.25,
    path: str | Path | None = None,
    seed: int = 0,
) -> ad.AnnData:
    """Sets of real Fashion-MNIST images (28×28) as class mixtures, as :func:`digit_sets`.

    Drawn from the 60,000 training images (:func:`load_fashion_mnist`; ``path`` as
    there). Images are float32 ``(n, 28, 28)`` in [0, 1]; ``uns['fashion_mnist_sets']``
    is laid out as ``uns['digit_sets']``.
    {ground_truth}

    Parameters
    ----------
    n_sets, n_images_per_set, n_classes_per_set, alpha, held_out_fraction, seed
        As in :func:`digit_sets`.
    path
        Folder with the Fashion-MNIST files (see :func:`load_fashion_mnist`).
    """
    images, labels = load_fashion_mnist(path, "train")
    return class_mixture_sets(
        images,
        labels,
        list(FASHION_MNIST_CLASSES),
        n_sets=n_sets,
        n_images_per_set=n_images_per_set,
        n_classes_per_set=n_classes_per_set,
        alpha=alpha,
        held_out_fraction=held_out_fraction,
        seed=seed,
        name="fashion_mnist_sets",
    )


fashion_mnist_sets.__doc__ = fashion_mnist_sets.__doc__.replace(
    "{ground_truth}", _GROUND_TRUTH_DOC
)
