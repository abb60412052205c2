"""gde: generative distribution embeddings of sets of cells."""

from . import data, datasets, metrics, module, nn, pl, tl
from .model import GDEModel

__version__ = "0.2.0.dev0"

__all__ = ["GDEModel", "data", "datasets", "metrics", "module", "nn", "pl", "tl"]
