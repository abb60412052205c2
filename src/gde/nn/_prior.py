"""Prior of the per-cell latent given the set embedding."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal


class SetMixturePrior(nn.Module):
    """Mixture-of-Gaussians prior of the per-cell latent whose weights the set chooses.

    ``p(u | z_set) = sum_k pi_k(z_set) N(u; m_k, diag(s_k²))``: the components are shared
    by all sets (cell states), their weights are a function of the set embedding (the
    set's composition). With a fixed standard-normal prior, a conditional VAE can encode
    cell states in ``u`` without reference to the set, so the set embedding need not
    carry composition and generated cells come out with an average composition; this
    prior makes composition part of the likelihood of every cell.

    Parameters
    ----------
    n_latent_set
        Dimension of the set embedding.
    n_latent_cell
        Dimension of the per-cell latent.
    n_components
        Number of mixture components.
    n_hidden
        Width of the network from the set embedding to the weights.
    """

    def __init__(
        self, n_latent_set: int, n_latent_cell: int, n_components: int = 16, n_hidden: int = 128
    ):
        super().__init__()
        if n_components < 1:
            raise ValueError(f"n_components must be at least 1, got {n_components}.")
        self.n_components = n_components
        self.means = nn.Parameter(torch.randn(n_components, n_latent_cell))
        self.log_scales = nn.Parameter(torch.zeros(n_components, n_latent_cell))
        self.logits = nn.Sequential(
            nn.Linear(n_latent_set, n_hidden), nn.GELU(), nn.Linear(n_hidden, n_components)
        )

    def forward(self, z: torch.Tensor) -> MixtureSameFamily:
        """The prior of each cell's latent, ``z`` being its set's embedding ``(n, n_latent)``."""
        n = z.shape[0]
        scales = self.log_scales.clamp(-5.0, 2.0).exp()
        comp = Independent(Normal(self.means.expand(n, -1, -1), scales.expand(n, -1, -1)), 1)
        return MixtureSameFamily(Categorical(logits=self.logits(z)), comp)


def mmd_to_standard_normal(
    u: torch.Tensor, bandwidths: Sequence[float] = (0.25, 1.0, 4.0)
) -> torch.Tensor:
    """Squared MMD between each set's latents and the standard normal, in closed form.

    With the Gaussian kernel ``k(x, y) = exp(-||x - y||² / (2 h²))``, the expectations
    involving ``N(0, I)`` have closed forms, so no reference draws are needed:
    ``MMD² = mean_ij k(u_i, u_j) - 2 mean_i E_y k(u_i, y) + E_yy' k(y, y')``. The kernel
    is summed over ``h² = d * bandwidths``.

    Parameters
    ----------
    u
        Latents ``(n_sets, m, d)``.
    bandwidths
        Squared bandwidths relative to the dimension ``d``.

    Returns
    -------
    ``(n_sets,)`` squared MMD of each set's empirical distribution of latents.
    """
    d = u.shape[-1]
    sq = torch.cdist(u, u).pow(2)  # (n_sets, m, m)
    norms = u.pow(2).sum(-1)  # (n_sets, m)
    out = torch.zeros(u.shape[0], dtype=u.dtype, device=u.device)
    for rel in bandwidths:
        h2 = rel * d
        within = torch.exp(-sq / (2 * h2)).mean(dim=(-1, -2))
        cross = (h2 / (h2 + 1)) ** (d / 2) * torch.exp(-norms / (2 * (h2 + 1))).mean(-1)
        prior = (h2 / (h2 + 2)) ** (d / 2)
        out = out + within - 2 * cross + prior
    return out
