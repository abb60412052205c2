"""gde: generative distribution embeddings of sets of cells, sequences and images."""

from ._quiet import ignore_import_noise

ignore_import_noise()

from . import data, datasets, image, metrics, module, nn, pl, pp, seq, tl  # noqa: E402
from ._io import read_lazy  # noqa: E402
from ._version import __version__ as __version__  # noqa: E402
from .model import GDEModel  # noqa: E402

__all__ = [
    "GDEModel",
    "data",
    "datasets",
    "image",
    "metrics",
    "module",
    "nn",
    "pl",
    "pp",
    "read_lazy",
    "seq",
    "tl",
]
