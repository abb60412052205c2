"""Count likelihoods and the decoder that parameterises them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from scvi.distributions import NegativeBinomial, Poisson, ZeroInflatedNegativeBinomial
from scvi.nn import FCLayers
from torch import nn
from torch.distributions import Distribution

CountLikelihood = Literal["nb", "zinb", "poisson"]
Dispersion = Literal["gene", "gene-batch", "gene-cell"]
COUNT_LIKELIHOODS = ("nb", "zinb", "poisson")


def decoder_body(
    n_input: int,
    n_hidden: int,
    n_cat_list: Sequence[int] | None,
    n_cont: int,
    n_layers: int,
) -> FCLayers:
    """Hidden layers shared by gde's decoders: scvi-tools' ``FCLayers`` with LayerNorm.

    Batch and covariates are injected into every layer; no dropout, no BatchNorm.
    """
    return FCLayers(
        n_in=n_input,
        n_out=n_hidden,
        n_cat_list=n_cat_list,
        n_cont=n_cont,
        n_layers=n_layers,
        n_hidden=n_hidden,
        dropout_rate=0.0,
        inject_covariates=True,
        use_batch_norm=False,
        use_layer_norm=True,
    )


class LinearSkip(nn.Module):
    """A linear map from the last ``n_in`` decoder inputs to the outputs, zero at the start.

    Added to a decoder's output past its hidden layers, it lets those inputs (a set
    embedding) move each output by a learned direction: shifts of the inputs that add up
    then add up in the output, which an MLP alone does not guarantee.
    """

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.n_in = int(n_in)
        self.weight = nn.Parameter(torch.zeros(n_out, self.n_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, n_out)`` from the last ``n_in`` columns of ``x``."""
        return x[:, -self.n_in :] @ self.weight.T

    def hidden_part(self, x: torch.Tensor) -> torch.Tensor:
        """The columns of ``x`` that this map does not read (all but the last ``n_in``)."""
        return x[:, : -self.n_in]


def hidden_inputs(n_input: int, n_linear: int, linear_only: bool) -> int:
    """Inputs of a decoder's hidden layers: all, or without the ``n_linear`` skipped ones."""
    if not linear_only:
        return n_input
    if not 0 < n_linear < n_input:
        raise ValueError(
            f"linear_only needs 0 < n_linear < n_input (got n_linear={n_linear}, "
            f"n_input={n_input}): the hidden layers need inputs of their own."
        )
    return n_input - n_linear


def split_segments(x: torch.Tensor, segments: Sequence[int] | None) -> list[torch.Tensor]:
    """Split the last axis into consecutive blocks of the given sizes (one per modality)."""
    return [x] if segments is None else list(torch.split(x, list(segments), dim=-1))


def log_library(x: torch.Tensor, segments: Sequence[int] | None = None) -> torch.Tensor:
    """Log total counts of each cell, per block of features: ``(..., n_segments)``.

    With ``segments`` (the sizes of consecutive feature blocks, e.g. genes then
    proteins), each modality has its own library size; without, one block.
    """
    totals = [p.sum(-1, keepdim=True) for p in split_segments(x, segments)]
    return torch.log(torch.cat(totals, dim=-1).clamp_min(1.0))


def count_distribution(
    likelihood: CountLikelihood,
    mu: torch.Tensor,
    theta: torch.Tensor | None = None,
    zi_logits: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
) -> Distribution:
    """Build the count distribution named by ``likelihood`` (scvi-tools' classes)."""
    if likelihood == "nb":
        return NegativeBinomial(mu=mu, theta=theta, scale=scale)
    elif likelihood == "zinb":
        return ZeroInflatedNegativeBinomial(mu=mu, theta=theta, zi_logits=zi_logits, scale=scale)
    elif likelihood == "poisson":
        return Poisson(mu, scale=scale)
    else:
        raise ValueError(f"likelihood must be one of {COUNT_LIKELIHOODS}, got {likelihood!r}.")


class CountDecoder(nn.Module):
    """Map a per-cell latent vector to a count distribution with scVI's library size.

    The mean is ``exp(library) * softmax(f(z, covariates))``; the inverse dispersion is
    per gene, per gene and batch, or per gene and cell; a zero-inflation head exists only
    for ``likelihood="zinb"``.

    Parameters
    ----------
    n_input
        Dimension of the decoder input.
    n_output
        Number of genes.
    likelihood
        ``"nb"``, ``"zinb"`` or ``"poisson"``.
    dispersion
        ``"gene"``, ``"gene-batch"`` or ``"gene-cell"``.
    n_batch
        Number of batches (for ``dispersion="gene-batch"`` and covariate injection).
    n_cat_list
        Categories of each categorical covariate injected into every layer, batch first.
    n_cont
        Number of continuous covariates injected into every layer.
    n_layers, n_hidden
        Size of the hidden network.
    segments
        Sizes of consecutive blocks of features that are separate modalities (e.g. genes,
        then surface proteins): each block has its own softmax and library size.
        ``None``: one block.
    n_linear
        The last ``n_linear`` inputs (e.g. a set embedding) also act linearly on every
        gene's log rate, past the hidden layers (:class:`LinearSkip`, zero at the start).
    linear_only
        Those ``n_linear`` inputs act through the linear map alone: the hidden layers do
        not see them, so they move every cell's log rates by the same amounts.
    """

    def __init__(
        self,
        n_input: int,
        n_output: int,
        likelihood: CountLikelihood = "nb",
        dispersion: Dispersion = "gene",
        n_batch: int = 1,
        n_cat_list: Sequence[int] | None = None,
        n_cont: int = 0,
        n_layers: int = 1,
        n_hidden: int = 128,
        segments: Sequence[int] | None = None,
        n_linear: int = 0,
        linear_only: bool = False,
    ):
        super().__init__()
        n_hidden_in = hidden_inputs(n_input, n_linear, linear_only)
        if segments is not None and sum(segments) != n_output:
            raise ValueError(f"segments {list(segments)} do not add up to {n_output} features.")
        self.segments = None if segments is None else [int(k) for k in segments]
        if likelihood not in COUNT_LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {COUNT_LIKELIHOODS}, got {likelihood!r}.")
        self.likelihood = likelihood
        self.dispersion = dispersion
        self.hidden = decoder_body(n_hidden_in, n_hidden, n_cat_list, n_cont, n_layers)
        self.scale = nn.Linear(n_hidden, n_output)
        self.linear = LinearSkip(n_linear, n_output) if n_linear else None
        self.linear_only = bool(linear_only)
        # per-batch log-fold change of each gene: batch effects need not pass through z
        self.batch_offset = nn.Parameter(torch.zeros(n_batch, n_output)) if n_batch > 1 else None
        self.zi_logits = nn.Linear(n_hidden, n_output) if likelihood == "zinb" else None
        if likelihood == "poisson":
            self.log_theta = None
        elif dispersion == "gene":
            self.log_theta = nn.Parameter(torch.randn(n_output))
        elif dispersion == "gene-batch":
            self.log_theta = nn.Parameter(torch.randn(n_output, n_batch))
        elif dispersion == "gene-cell":
            self.log_theta = nn.Linear(n_hidden, n_output)
        else:
            raise ValueError(
                f"dispersion must be 'gene', 'gene-batch' or 'gene-cell', got {dispersion!r}."
            )

    def forward(
        self,
        z: torch.Tensor,
        library: torch.Tensor,
        batch_index: torch.Tensor,
        *cat_list: torch.Tensor,
        cont: torch.Tensor | None = None,
    ) -> Distribution:
        """Count distribution of each cell.

        Parameters
        ----------
        z
            Decoder input, ``(n_cells, n_input)``.
        library
            Log library size, ``(n_cells, 1)``, or ``(n_cells, n_segments)`` with one
            library size per block of features.
        batch_index
            Batch codes, ``(n_cells, 1)``.
        *cat_list
            Other categorical covariates, ``(n_cells, 1)`` each.
        cont
            Continuous covariates, ``(n_cells, n_cont)``.
        """
        px = self.hidden(
            self.linear.hidden_part(z) if self.linear_only else z,
            batch_index,
            *cat_list,
            cont=cont,
        )
        logits = self.scale(px)
        if self.linear is not None:
            logits = logits + self.linear(z)
        if self.batch_offset is not None:
            logits = logits + self.batch_offset[batch_index.squeeze(-1).long()]
        blocks = split_segments(logits, self.segments)
        scales = [torch.softmax(b, dim=-1) for b in blocks]
        scale = torch.cat(scales, dim=-1)
        libs = library.exp().split(1, dim=-1) if len(blocks) > 1 else [library.exp()]
        mu = torch.cat([lib * sc for lib, sc in zip(libs, scales, strict=True)], dim=-1)
        theta = None
        if self.log_theta is not None:
            if self.dispersion == "gene":
                theta = self.log_theta.exp()
            elif self.dispersion == "gene-batch":
                # (n_genes, n_batch) -> (n_cells, n_genes)
                theta = self.log_theta.exp().T[batch_index.squeeze(-1).long()]
            else:
                theta = self.log_theta(px).exp()
        zi = self.zi_logits(px) if self.zi_logits is not None else None
        return count_distribution(self.likelihood, mu, theta=theta, zi_logits=zi, scale=scale)
