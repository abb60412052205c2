"""Gaussian decoder for continuous features."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import Normal

from ._count_decoder import LinearSkip, decoder_body, hidden_inputs


class NormalDecoder(nn.Module):
    """Map a per-cell latent vector to a Gaussian over continuous features.

    The mean and the log standard deviation are MLP heads on the latent and covariates,
    so the noise level can differ between sets and cells.

    Parameters
    ----------
    n_input
        Dimension of the decoder input.
    n_output
        Number of features.
    n_cat_list
        Categories of each categorical covariate injected into every layer, batch first.
    n_cont
        Number of continuous covariates injected into every layer.
    n_layers, n_hidden
        Size of the hidden network.
    n_linear
        The last ``n_linear`` inputs (e.g. a set embedding) also act linearly on the
        mean, past the hidden layers (:class:`~gde.nn.LinearSkip`, zero at the start).
    linear_only
        Those ``n_linear`` inputs act through the linear map alone (the hidden layers do
        not see them): they shift every cell's mean by the same amounts.
    """

    def __init__(
        self,
        n_input: int,
        n_output: int,
        n_cat_list: Sequence[int] | None = None,
        n_cont: int = 0,
        n_layers: int = 1,
        n_hidden: int = 128,
        n_linear: int = 0,
        linear_only: bool = False,
    ):
        super().__init__()
        n_hidden_in = hidden_inputs(n_input, n_linear, linear_only)
        self.hidden = decoder_body(n_hidden_in, n_hidden, n_cat_list, n_cont, n_layers)
        self.mean = nn.Linear(n_hidden, n_output)
        self.log_scale = nn.Linear(n_hidden, n_output)
        self.linear = LinearSkip(n_linear, n_output) if n_linear else None
        self.linear_only = bool(linear_only)

    def forward(
        self,
        z: torch.Tensor,
        batch_index: torch.Tensor,
        *cat_list: torch.Tensor,
        cont: torch.Tensor | None = None,
    ) -> Normal:
        """Gaussian of each cell's features, ``(n_cells, n_output)``."""
        h = self.hidden(
            self.linear.hidden_part(z) if self.linear_only else z,
            batch_index,
            *cat_list,
            cont=cont,
        )
        mean = self.mean(h)
        if self.linear is not None:
            mean = mean + self.linear(z)
        return Normal(mean, self.log_scale(h).clamp(-9.0, 5.0).exp())
