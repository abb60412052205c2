"""Torch modules: set encoder + conditional generator; tensors in, LossOutput out."""

from ._base import SetModuleBase
from ._set_cvae import SetCVAE
from ._set_ddpm import SetDDPM

__all__ = ["SetCVAE", "SetDDPM", "SetModuleBase"]
