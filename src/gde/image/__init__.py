"""Distribution embeddings of sets of images: wells, perturbations, patients' crops."""

from ._field import images_to_adata
from ._model import ImageGDEModel

__all__ = ["ImageGDEModel", "images_to_adata"]
