"""Image arrays: checks and pixel ranges shared by gde.image, the tools and datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd


def check_images(images, where: str) -> np.ndarray:
    """``images`` as a numeric array ``(n, H, W)`` or ``(n, C, H, W)`` without NaN."""
    if isinstance(images, pd.DataFrame) or not hasattr(images, "shape"):
        raise TypeError(
            f"{where} must be an array of images, (n, H, W) or (n, C, H, W); got "
            f"{type(images).__name__}."
        )
    arr = np.asarray(images)
    if arr.dtype == object:
        raise ValueError(
            f"{where} holds images of different shapes (an object array): resize or pad "
            "them to one shape first."
        )
    if arr.ndim not in (3, 4):
        raise ValueError(
            f"{where} has shape {arr.shape}: images must be (n, H, W) for grey images or "
            "(n, C, H, W) with channels first."
        )
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{where} has dtype {arr.dtype}; pixels must be numbers.")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr.reshape(len(arr), -1))).any(1).sum())
        raise ValueError(
            f"{where} has NaN or infinite pixels in {bad} image(s); fill or drop them first."
        )
    return arr


def pixel_range_of(arr: np.ndarray) -> tuple[float, float]:
    """The pixel range mapped to ``[-1, 1]``: ``(0, 255)`` for uint8, else the data's."""
    if arr.dtype == np.uint8:
        return 0.0, 255.0
    low, high = float(arr.min()), float(arr.max())
    return (low, high) if high > low else (low, low + 1.0)
