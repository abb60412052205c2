"""Torch modules: set encoder + conditional generator; tensors in, LossOutput out."""

from ._base import SetModuleBase
from ._elements import ElementSetModule
from ._set_cvae import SetCVAE
from ._set_ddpm import SetDDPM
from ._set_image import SetImageModule, scale_pixels  # noqa: F401
from ._set_seq import SetSeqModule, default_kmer_ks, reference_features  # noqa: F401

__all__ = [
    "ElementSetModule",
    "SetCVAE",
    "SetDDPM",
    "SetImageModule",
    "SetModuleBase",
    "SetSeqModule",
]
