"""The W2 space and the W2-matching term: latent distances calibrated to W2 between sets."""

from __future__ import annotations

import numpy as np
import torch

from gde._constants import GDE_KEYS
from gde.nn import OTSolver, batch_w2_squared

from ._inputs import as_buffer


class W2MatchingMixin:
    """W2 space and W2-matching term of :class:`gde.module.SetModuleBase`.

    Holds the fixed reference space as buffers (:meth:`_init_w2_term`) and compares
    latent distances between sets with W2 between their cells in that space. Uses the
    attributes and input transforms of :class:`~gde.module.SetModuleBase`.
    """

    #: the encoder input starts with the standardised reference features (modules whose
    #: elements are featurized: sequences, images)
    reference_leads_input = False

    def _init_w2_term(
        self,
        w2_weight: float,
        w2_pairs: int,
        w2_solver: OTSolver,
        w2_n_comps: int,
        reference_components: np.ndarray | None,
        reference_center: np.ndarray | None,
        reference_batch_offset: np.ndarray | None,
    ) -> None:
        """Check the W2 options and register the W2 space as buffers."""
        if w2_weight < 0 or w2_pairs < 1:
            raise ValueError("Need w2_weight >= 0 and w2_pairs >= 1.")
        if w2_solver not in ("auto", "exact", "sinkhorn"):
            raise ValueError(
                f"w2_solver must be 'auto', 'exact' or 'sinkhorn', got {w2_solver!r}."
            )
        self.w2_weight, self.w2_pairs, self.w2_solver = w2_weight, w2_pairs, w2_solver
        n_batch, n_input, n_ref = self.n_batch, self.n_input, self.n_reference
        self.has_reference = reference_components is not None
        comps = np.zeros((n_ref, 1)) if reference_components is None else reference_components
        # (n_reference, n_components)
        comps = torch.as_tensor(np.asarray(comps)).float()
        if comps.shape[0] != n_ref:
            raise ValueError(
                f"reference_components has {comps.shape[0]} rows; the reference input has "
                f"{n_ref} features."
            )
        self.w2_n_comps = int(min(w2_n_comps, comps.shape[1]))
        self.register_buffer("reference_components", comps)
        self.register_buffer("reference_center", as_buffer(reference_center, (n_ref,)))
        self.register_buffer(
            "reference_batch_offset", as_buffer(reference_batch_offset, (n_batch, n_input))
        )
        # W2² subtracted from every target: the sampling floor, measured by the model at
        # each train() (0: none); not saved, so models saved before it load unchanged
        self.register_buffer("w2_offset", torch.zeros(()), persistent=False)

    def _init_mean_path(self) -> None:
        """Start the set encoder's mean path from the W2 space, in encoder-input units.

        The first ``n_reference`` encoder inputs are the reference input (standardised,
        for continuous data); the mean path reads only those.
        """
        if not self.has_reference:
            return
        n_ref = self.n_reference
        comps, center = self.reference_components, self.reference_center
        if self.data_kind == "continuous":
            # encoder input x_in = (x - mean) / std - shift, so the reference units are
            # x_in * std + mean: fold std and mean into the projection
            std, mean = self.feature_std[:n_ref], self.feature_mean[:n_ref]
            comps, center = comps * std[:, None], (center - mean) / std
        full = comps.new_zeros(self.n_input, comps.shape[1])
        full[:n_ref] = comps
        full_center = center.new_zeros(self.n_input)
        full_center[:n_ref] = center
        self.set_encoder.init_mean_path(full, full_center)

    def reference_input(self, x: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        """Data in the fixed, batch-free units of the W2 space, before projecting.

        Counts: ``log1p`` counts per 10,000 after dividing out the fixed per-batch fold
        changes; continuous: data units with the per-batch shifts removed.
        """
        b = batch_index.squeeze(-1).long()
        if self.data_kind == "continuous":
            if self.correct_encoder_input and self.n_batch > 1:
                x = x - self.batch_shift[b] * self.feature_std
            return x
        if self.n_batch > 1 and self.correct_encoder_input:
            x = x * torch.exp(-self.reference_batch_offset)[b]
            return self._log_normalize(x) - self.log_batch_shift[b]
        return self._log_normalize(x)

    def w2_space(self, x: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        """Cells in the space where the W2-matching term measures W2, ``(..., k)``."""
        return self.project_reference(self.reference_input(x, batch_index))

    def project_reference(self, ref: torch.Tensor) -> torch.Tensor:
        """Reference input ``(..., n_reference)`` on the W2 space's principal axes."""
        if not self.has_reference:
            return ref
        comps = self.reference_components[:, : self.w2_n_comps]
        return (ref - self.reference_center) @ comps

    @torch.no_grad()
    def w2_points(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """The cells of ``tensors`` (``(n, ...)`` registry tensors) in the W2 space."""
        x = self.input_counts(tensors).to(self.device)
        return self.w2_space(x, tensors[GDE_KEYS.BATCH_KEY].to(self.device))

    def _ot_points(
        self, x: torch.Tensor, x_in: torch.Tensor, batch_index: torch.Tensor
    ) -> torch.Tensor:
        """What W2 is measured on in training: the W2 space, else data or encoder input."""
        if self.has_reference and self.reference_leads_input:
            # the encoder input starts with the standardised reference features: undo
            # the standardisation rather than compute the features a second time
            n_ref = self.n_reference
            ref = x_in[..., :n_ref] * self.feature_std[:n_ref] + self.feature_mean[:n_ref]
            return self.project_reference(ref)
        if self.has_reference:
            return self.w2_space(x, batch_index)
        return x if self.data_kind == "continuous" else x_in

    def w2_matching(
        self, inference_outputs: dict, w2_target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict]:
        """W2-matching term: latent distances between sets pulled towards their W2.

        For ``w2_pairs`` random pairs ``(i, j)`` of the minibatch's sets (all pairs in
        evaluation mode), the term is
        ``w2_weight * mean((||z_i - z_j|| - W2(X_i, X_j))²)``. The target W2 is taken
        from ``w2_target`` (``(n_sets, n_sets)``, NaN where unknown) when given, else
        computed without gradient between the two sets' cells in the minibatch, in the W2
        space (:meth:`w2_space`). With a positive ``w2_offset`` buffer (W2², the sampling
        floor a model may set before training), the target is
        ``sqrt(max(W2² - w2_offset, 0))``: two samples of one distribution are not at W2 0
        from each other, and an encoder that cannot tell them apart cannot place them at
        that floor's distance. It makes latent L2 distances calibrated to W2, while the
        generative loss keeps the embedding a description of the whole distribution.
        Returns the weighted term (0 if ``w2_weight`` is 0) and metrics.
        """
        z_set = inference_outputs["z_set"]
        n_sets = z_set.shape[0]
        if self.w2_weight == 0 or n_sets < 2:
            return torch.zeros((), device=z_set.device), {}
        # distinct pairs: (n_pairs,) first and second members
        i, j = torch.triu_indices(n_sets, n_sets, offset=1, device=z_set.device)
        if w2_target is not None:
            target = w2_target.to(z_set)[i, j]
            known = torch.isfinite(target)
            i, j, target = i[known], j[known], target[known]
        if self.training:  # a random subset of w2_pairs; in evaluation all pairs
            pick = torch.randperm(len(i), device=z_set.device)[: self.w2_pairs]
            i, j = i[pick], j[pick]
            target = target[pick] if w2_target is not None else None
        if len(i) == 0:
            return torch.zeros((), device=z_set.device), {}
        if w2_target is None:
            x = self._ot_points(*inference_outputs["ot_inputs"])
            target = batch_w2_squared(x[i], x[j], solver=self.w2_solver).clamp_min(0).sqrt()
        if self.w2_offset > 0:
            target = (target.pow(2) - self.w2_offset).clamp_min(0).sqrt()
        latent = (z_set[i] - z_set[j]).pow(2).sum(-1).add(1e-12).sqrt()
        mismatch = (latent - target).pow(2).mean()
        return self.w2_weight * mismatch, {"w2_mismatch": mismatch.detach()}
