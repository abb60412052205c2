"""Generated images against their set: class proportions read by a classifier."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def class_proportions(labels: Sequence, classes: Sequence) -> np.ndarray:
    """Fraction of ``labels`` in each of ``classes``, ``(len(classes),)``.

    Labels outside ``classes`` count towards no class (the fractions then sum to less
    than 1).
    """
    labels = np.asarray(labels).astype(str)
    classes = np.asarray(classes).astype(str)
    if len(labels) == 0:
        raise ValueError("No labels: cannot compute proportions of an empty set.")
    return np.array([(labels == c).mean() for c in classes])


def class_proportion_error(predicted_labels: Sequence, weights, classes: Sequence) -> float:
    """L1 distance between the class proportions of ``predicted_labels`` and ``weights``.

    Parameters
    ----------
    predicted_labels
        Class of each generated image, as read by a classifier trained on real images.
    weights
        The set's true class weights, one per class of ``classes`` (summing to 1).
    classes
        The class names, in the order of ``weights``.

    Returns
    -------
    ``sum_k |p̂_k - w_k|``, between 0 (same proportions) and 2 (disjoint classes).
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(classes),):
        raise ValueError(f"weights has shape {weights.shape}; expected ({len(classes)},).")
    return float(np.abs(class_proportions(predicted_labels, classes) - weights).sum())
