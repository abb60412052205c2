"""Baseline for sets of images: the pixel-mean pseudobulk."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from gde._anndata_utils import check_set_column, set_codes
from gde._images import check_images

from ._pseudobulk import set_mean_embedding, set_means


def pixel_mean_embedding(
    adata: AnnData,
    *,
    set_key: str,
    image_key: str = "X_image",
    n_comps: int = 50,
    key_added: str | None = "X_pixel_mean",
    copy: bool = False,
) -> pd.DataFrame | AnnData | None:
    """Embed each set by the PCA of its mean image.

    Each set is the mean of its images' pixels (in the images' own units); the set
    means are centred and projected on their top principal components. The pixel-mean
    pseudobulk an image-set embedding has to beat.

    Parameters
    ----------
    adata
        One row per image, the images in ``adata.obsm[image_key]``.
    set_key
        Column of ``adata.obs`` naming each image's set.
    image_key
        Key of ``adata.obsm`` holding the images, ``(n, H, W)`` or ``(n, C, H, W)``.
    n_comps
        Number of principal components (at most ``n_sets - 1`` are kept).
    key_added
        Write the per-set table to ``adata.uns[key_added]`` and each image's set
        embedding to ``adata.obsm[key_added]``; ``None`` writes nothing.
    copy
        Return a modified copy of ``adata`` instead of writing in place.

    Returns
    -------
    The per-set embedding (``copy=False``), or the modified copy (``copy=True``).
    """
    check_set_column(adata, set_key)
    if image_key not in adata.obsm:
        raise KeyError(f"adata.obsm['{image_key}'] not found (obsm has {list(adata.obsm)}).")
    images = check_images(adata.obsm[image_key], f"adata.obsm['{image_key}']")
    if copy:
        adata = adata.copy()
    codes, names = set_codes(adata.obs[set_key])
    pixels = images.reshape(len(images), -1).astype(np.float64)
    means = set_means(pixels, codes, len(names))
    params = {"set_key": set_key, "image_key": image_key}
    return set_mean_embedding(
        adata, means, codes, names, set_key, n_comps, "pixel", key_added, params, copy
    )
