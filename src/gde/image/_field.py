"""AnnData field of images in ``obsm``, and a helper that builds such an AnnData."""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
from anndata import AnnData
from scvi.data.fields import ObsmField

from gde._images import check_images, pixel_range_of


class ImageField(ObsmField):
    """Images in ``adata.obsm[image_key]``, ``(n, H, W)`` or ``(n, C, H, W)``.

    Registration checks the images and records their shape, whether they have a
    channel axis, their dtype and the pixel range that is mapped to ``[-1, 1]``
    (``0..255`` for uint8, else the data's minimum and maximum). Objects transferred to
    the model (new sets to embed) must have images of the same shape; they are scaled
    with the registered range. The images are read in place, never copied or changed.
    """

    SHAPE_KEY = "image_shape"
    CHANNEL_KEY = "channel_axis"
    RANGE_KEY = "pixel_range"
    DTYPE_KEY = "dtype"

    def __init__(self, registry_key: str, image_key: str):
        super().__init__(registry_key, image_key, correct_data_format=False)

    def validate_field(self, adata: AnnData) -> None:
        """The images exist and are a numeric 3-D or 4-D array without NaN."""
        if self.attr_key not in adata.obsm:
            raise KeyError(
                f"adata.obsm['{self.attr_key}'] not found: put the images there as an array "
                "(n, H, W) or (n, C, H, W), e.g. with gde.image.images_to_adata, or pass "
                f"image_key=... (obsm has {list(adata.obsm)})."
            )
        check_images(adata.obsm[self.attr_key], f"adata.obsm['{self.attr_key}']")

    def register_field(self, adata: AnnData) -> dict:
        """Register the images and record their shape, dtype and pixel range."""
        state = super().register_field(adata)
        arr = np.asarray(adata.obsm[self.attr_key])
        shape = arr.shape[1:] if arr.ndim == 4 else (1, *arr.shape[1:])
        state[self.SHAPE_KEY] = np.asarray(shape, dtype=int)
        state[self.CHANNEL_KEY] = arr.ndim == 4
        state[self.RANGE_KEY] = np.asarray(pixel_range_of(arr), dtype=float)
        state[self.DTYPE_KEY] = str(arr.dtype)
        return state

    def transfer_field(self, state_registry: dict, adata_target: AnnData, **kwargs) -> dict:
        """Check that ``adata_target``'s images have the registered shape."""
        self.validate_field(adata_target)
        arr = adata_target.obsm[self.attr_key]
        expected = tuple(int(s) for s in state_registry[self.SHAPE_KEY])
        channel_axis = bool(state_registry[self.CHANNEL_KEY])
        got = arr.shape[1:] if arr.ndim == 4 else (1, *arr.shape[1:])
        if got != expected or (arr.ndim == 4) != channel_axis:
            want = expected if channel_axis else expected[1:]
            raise ValueError(
                f"adata.obsm['{self.attr_key}'] holds images of shape {arr.shape[1:]}; the "
                f"model was trained on images of shape {want}."
            )
        state = super().transfer_field(state_registry, adata_target, **kwargs)
        for key in (self.SHAPE_KEY, self.CHANNEL_KEY, self.RANGE_KEY, self.DTYPE_KEY):
            state[key] = state_registry[key]
        return state


def registered_images(manager, registry_key: str) -> dict:
    """Shape ``(C, H, W)``, channel axis, pixel range and dtype that a manager registered."""
    state = manager.get_state_registry(registry_key)
    return {
        "image_shape": tuple(int(s) for s in state[ImageField.SHAPE_KEY]),
        "channel_axis": bool(state[ImageField.CHANNEL_KEY]),
        "pixel_range": tuple(float(v) for v in state[ImageField.RANGE_KEY]),
        "dtype": str(state[ImageField.DTYPE_KEY]),
    }


def images_to_adata(
    images,
    sets: Sequence,
    obs: pd.DataFrame | None = None,
    image_key: str = "X_image",
    set_key: str = "set",
) -> AnnData:
    """An AnnData of images, one row per image, ready for ``ImageGDEModel.setup_anndata``.

    Parameters
    ----------
    images
        Array ``(n, H, W)`` (grey) or ``(n, C, H, W)``, or a list of equally shaped
        images.
    sets
        The set (well, perturbation, patient) of each image.
    obs
        Further per-image annotations (``n`` rows); copied.
    image_key
        Key of ``obsm`` to hold the images.
    set_key
        Column of ``obs`` to hold ``sets``.

    Returns
    -------
    AnnData with an empty ``X`` (``n × 0``), the images in ``obsm[image_key]`` and the
    sets in ``obs[set_key]`` (categorical).
    """
    if isinstance(images, list | tuple):
        shapes = {np.shape(im) for im in images}
        if len(shapes) > 1:
            raise ValueError(
                f"The images have {len(shapes)} different shapes ({sorted(shapes)[:3]}...): "
                "resize or pad them to one shape first."
            )
        images = np.stack(images)
    images = check_images(images, "images")
    sets = np.asarray(sets)
    if len(sets) != len(images):
        raise ValueError(f"{len(images)} images but {len(sets)} set labels.")
    frame = pd.DataFrame(index=[f"image_{i}" for i in range(len(images))])
    if obs is not None:
        if len(obs) != len(images):
            raise ValueError(f"obs has {len(obs)} rows for {len(images)} images.")
        frame = obs.copy()
        frame.index = frame.index.astype(str)
    frame[set_key] = pd.Categorical(sets.astype(str))
    out = ad.AnnData(np.zeros((len(images), 0), dtype=np.float32), obs=frame)
    out.obsm[image_key] = images
    return out
