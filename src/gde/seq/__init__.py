"""Distribution embeddings of sets of sequences: repertoires, methylation reads, libraries."""

from gde._sequences import Alphabet

from ._model import SeqGDEModel

__all__ = ["Alphabet", "SeqGDEModel"]
