"""Torch modules: set encoder + conditional generator; tensors in, LossOutput out."""

from ._set_cvae import SetCVAE

__all__ = ["SetCVAE"]
