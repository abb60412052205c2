"""The base of the modules for sets of elements that are not cells (images, sequences)."""

from __future__ import annotations

import numpy as np
import torch
from scvi.module.base import LossOutput, auto_move_data

from gde._constants import GDE_KEYS

from ._base import SetModuleBase


class ElementSetModule(SetModuleBase):
    """Sets of elements read through fixed reference features and a learned featurizer.

    Each element enters the set encoder as its *reference features* (fixed:
    :meth:`reference_input`, standardised with ``reference_mean`` and ``reference_std``)
    followed by the output of ``self.featurizer`` (learned; ``None`` for none). The
    principal axes of the reference features (``reference_components``) are the W2 space
    of the W2-matching term and start the set encoder's mean path. A decoder learns from
    the first ``n_decode`` elements of each set of a minibatch, conditioned on the set
    embedding and the covariates.

    A modality supplies the element's reference features (:meth:`reference_input`), the
    featurizer, and its decoder through two methods: :meth:`element_loss` (the loss of
    each decoded element) and :meth:`draw` (new elements from their condition).

    Parameters
    ----------
    n_reference
        Number of reference features of an element.
    n_features
        Width of the featurizer's output (0: reference features only).
    n_decode
        Elements of each set in a minibatch that the decoder learns from (the set encoder
        reads all of them).
    reference_mean, reference_std
        Mean and standard deviation of each reference feature (``None``: 0 and 1).
    **kwargs
        Passed to :class:`gde.module.SetModuleBase` (set encoder, covariates, W2 space,
        W2-matching term, mean path).
    """

    reference_leads_input = True

    def __init__(
        self,
        n_reference: int,
        n_features: int,
        n_decode: int,
        reference_mean: np.ndarray | None = None,
        reference_std: np.ndarray | None = None,
        **kwargs,
    ):
        feature_mean = np.zeros(n_reference + n_features)
        feature_std = np.ones(n_reference + n_features)
        if reference_mean is not None:
            feature_mean[:n_reference] = reference_mean
        if reference_std is not None:
            feature_std[:n_reference] = reference_std
        super().__init__(
            n_reference + n_features,
            data_kind="continuous",
            correct_encoder_input=False,
            feature_mean=feature_mean,
            feature_std=feature_std,
            n_reference=n_reference,
            **kwargs,
        )
        self.n_decode = int(n_decode)

    # ------------------------------------------------------ what a modality adds
    def element_loss(self, target: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """The decoder's loss of each element ``target`` given its ``condition``: ``(n,)``."""
        raise NotImplementedError

    def draw(self, condition: torch.Tensor, **options) -> torch.Tensor:
        """New elements, one per row of ``condition``, in the data's units."""
        raise NotImplementedError

    # ------------------------------------------------------------ features
    def transform(self, x: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        """Elements to set-encoder input: standardised reference + learned features."""
        x = x.to(self.feature_mean.device)
        n_ref = self.n_reference
        ref = self.reference_input(x, batch_index)
        ref = (ref - self.feature_mean[:n_ref]) / self.feature_std[:n_ref]
        if self.featurizer is None:
            return ref
        return torch.cat([ref, self.featurizer(x)], dim=-1)

    # ------------------------------------------------------------ training
    def decoded_condition(self, out: dict, n_sets: int, set_size: int) -> tuple[int, torch.Tensor]:
        """The first ``n_decode`` elements of each set of a minibatch, and their condition.

        The sampler draws elements at random, so the first ones are a random subset.
        ``out`` is the output of ``_prepare``. Returns ``n_decode`` and the condition
        ``(n_sets * n_decode, n_latent + n_covariate_features)``.
        """
        n_decode = min(self.n_decode, set_size)

        def decoded(t):  # (n_sets * set_size, k) -> (n_sets * n_decode, k)
            return t.reshape(n_sets, set_size, -1)[:, :n_decode].reshape(n_sets * n_decode, -1)

        z = out["z_set"].unsqueeze(1).expand(n_sets, n_decode, -1).reshape(-1, self.n_latent)
        cont = None if out["cont"] is None else decoded(out["cont"])
        return n_decode, self.condition(z, [decoded(c) for c in out["cats"]], cont)

    def element_loss_output(
        self,
        per_element: torch.Tensor,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict,
        kl_weight: float,
    ) -> LossOutput:
        """A decoder's loss per element ``(n,)`` plus the set terms, as scvi-tools takes it.

        For decoders without a per-element latent (no local KL).
        """
        set_term, metrics = self.set_terms(
            inference_outputs, kl_weight, tensors.get(GDE_KEYS.W2_TARGET_KEY)
        )
        return LossOutput(
            loss=per_element.mean() + set_term,
            reconstruction_loss=per_element,
            kl_local=torch.zeros_like(per_element),
            extra_metrics=metrics,
        )

    @auto_move_data
    def inference(
        self,
        x: torch.Tensor,
        batch_index: torch.Tensor,
        cat_covs: torch.Tensor | None = None,
        cont_covs: torch.Tensor | None = None,
    ) -> dict:
        """Encode sets of elements ``(n_sets, set_size, ...)`` (as :meth:`input_counts` gives).

        Also returns the decoder's ``target`` (the first ``n_decode`` elements of each
        set, ``(n_sets * n_decode, ...)``) and its ``condition``.
        """
        out = self._prepare(x, batch_index, cat_covs, cont_covs)
        n_sets, set_size = x.shape[:2]
        n_decode, out["condition"] = self.decoded_condition(out, n_sets, set_size)
        out["target"] = x[:, :n_decode].flatten(0, 1)
        return out

    def _get_generative_input(self, tensors: dict, inference_outputs: dict) -> dict:
        return {}

    def generative(self) -> dict:
        """Nothing beyond :meth:`inference`: the decoder is scored in :meth:`loss`."""
        return {}

    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict,
        generative_outputs: dict,
        kl_weight: float = 1.0,
    ) -> LossOutput:
        """:meth:`element_loss` of each decoded element, plus the set terms."""
        out = inference_outputs
        per_element = self.element_loss(out["target"], out["condition"])
        return self.element_loss_output(per_element, tensors, out, kl_weight)

    # ---------------------------------------------------------- generation
    @torch.no_grad()
    def generate(
        self,
        z_set: torch.Tensor,
        n_cells: int,
        batch_index: torch.Tensor | None = None,
        library: torch.Tensor | None = None,
        cat_covs: torch.Tensor | None = None,
        cont_covs: torch.Tensor | None = None,
        **options,
    ) -> torch.Tensor:
        """Draw ``n_cells`` elements per set embedding ``z_set``: ``(n_sets * n_cells, ...)``.

        ``library`` is ignored (a count model's argument); ``options`` go to :meth:`draw`.
        """
        z_cells, _, cats, cont = self._generation_inputs(
            z_set, n_cells, batch_index, cat_covs, cont_covs
        )
        return self.draw(self.condition(z_cells, cats, cont), **options)
