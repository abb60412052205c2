"""A grid of images, one row per set (or per interpolation point)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from anndata import AnnData

from gde._anndata_utils import check_set_column
from gde._images import check_images

from ._utils import finish


def _as_picture(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """An image ``(H, W)`` or ``(C, H, W)`` as imshow takes it, and its colour map."""
    if image.ndim == 2:
        return image, "gray_r"
    if image.shape[0] == 1:
        return image[0], "gray_r"
    if image.shape[0] == 3:
        return np.moveaxis(image, 0, -1), None
    return image.mean(0), "gray_r"  # other channel counts: their mean


def image_grid(
    adata: AnnData,
    groupby: str,
    *,
    image_key: str = "X_image",
    groups: Sequence[str] | None = None,
    n_per_group: int = 8,
    seed: int = 0,
    panel_size: float = 0.9,
    show: bool | None = None,
    save: str | None = None,
) -> np.ndarray:
    """Draw ``n_per_group`` images of each group (a set, a point of an interpolation) in a row.

    Grey images are drawn dark on light, three-channel images in colour, others as the
    mean of their channels. Pixels are scaled over the whole grid, so rows compare.

    Parameters
    ----------
    adata
        One row per image (e.g. from :meth:`gde.image.ImageGDEModel.sample` or
        ``interpolate``, or real data).
    groupby
        Column of ``adata.obs`` whose groups are the rows (e.g. the set column, or
        ``"point"`` for an interpolation).
    image_key
        Key of ``adata.obsm`` holding the images.
    groups
        Groups to draw, in this order; all by default (at most 20).
    n_per_group
        Images per row (drawn at random without replacement when a group has more).
    seed
        Seed of the draw.
    panel_size
        Width and height of one image, in inches.
    show, save
        Show the figure (default: when not saving, in interactive mode); save it to
        this path.

    Returns
    -------
    The Axes, ``(n_groups, n_per_group)``.
    """
    check_set_column(adata, groupby)
    if image_key not in adata.obsm:
        raise KeyError(f"adata.obsm['{image_key}'] not found (obsm has {list(adata.obsm)}).")
    images = check_images(adata.obsm[image_key], f"adata.obsm['{image_key}']")
    labels = adata.obs[groupby].astype(str).to_numpy()
    if groups is None:
        groups = list(dict.fromkeys(adata.obs[groupby].astype(str)))[:20]
    groups = [str(g) for g in groups]
    absent = sorted(set(groups).difference(labels))
    if absent:
        raise KeyError(f"Groups {absent} are not in adata.obs['{groupby}'].")
    low, high = float(images.min()), float(images.max())
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(
        len(groups),
        n_per_group,
        figsize=(panel_size * n_per_group, panel_size * len(groups)),
        squeeze=False,
    )
    for row, group in enumerate(groups):
        rows = np.flatnonzero(labels == group)
        chosen = rng.choice(rows, min(n_per_group, len(rows)), replace=False)
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col < len(chosen):
                picture, cmap = _as_picture(np.asarray(images[chosen[col]], dtype=np.float64))
                if cmap is None:  # colour: scaled to [0, 1]
                    picture = (picture - low) / max(high - low, 1e-12)
                    ax.imshow(picture.clip(0, 1), interpolation="nearest")
                else:
                    ax.imshow(picture, cmap=cmap, vmin=low, vmax=high, interpolation="nearest")
        axes[row, 0].set_ylabel(group, rotation=0, ha="right", va="center", fontsize="small")
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    finish(fig, show=show, save=save, created=True)
    return axes
