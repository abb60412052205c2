"""Set-level analysis tools in scanpy's shape."""

from ._pseudobulk import pseudobulk_embedding

__all__ = ["pseudobulk_embedding"]
