"""Input transforms and covariates: the data and covariates as the networks see them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from gde._constants import GDE_KEYS
from gde.nn import one_hot_covariates, split_segments

DataKind = Literal["counts", "continuous"]
InputTransform = Literal["log1p_cp10k", "log1p"]


def as_buffer(value: np.ndarray | None, shape: tuple[int, ...], fill: float = 0.0) -> torch.Tensor:
    """``value`` as a float32 tensor of ``shape``; filled with ``fill`` if ``None``."""
    value = np.full(shape, fill) if value is None else np.asarray(value)
    return torch.as_tensor(value).float().reshape(shape)


class InputTransformMixin:
    """Input transforms and covariates of :class:`gde.module.SetModuleBase`.

    Holds the data statistics as buffers (:meth:`_register_input_stats`) and turns a
    minibatch into what the encoders see. Uses the attributes that
    :class:`~gde.module.SetModuleBase` sets: ``n_input``, ``n_batch``, ``data_kind``,
    ``input_transform``, ``correct_encoder_input``, ``modality_sizes``, ``cat_list``,
    ``n_continuous_cov`` and ``encode_covariates``.
    """

    def _register_input_stats(
        self,
        feature_mean: np.ndarray | None,
        feature_std: np.ndarray | None,
        batch_shift: np.ndarray | None,
        library_log_means: np.ndarray | None,
        library_log_vars: np.ndarray | None,
        log_batch_shift: np.ndarray | None,
    ) -> None:
        """Register the data statistics (see :class:`~gde.module.SetModuleBase`) as buffers."""
        n_batch, n_input = self.n_batch, self.n_input
        n_mod = 1 if self.modality_sizes is None else len(self.modality_sizes)
        self.register_buffer("feature_mean", as_buffer(feature_mean, (n_input,)))
        self.register_buffer("feature_std", as_buffer(feature_std, (n_input,), fill=1.0))
        self.register_buffer("batch_shift", as_buffer(batch_shift, (n_batch, n_input)))
        # (n_batch, n_modalities)
        self.register_buffer("library_log_means", as_buffer(library_log_means, (n_batch, n_mod)))
        self.register_buffer(
            "library_log_vars", as_buffer(library_log_vars, (n_batch, n_mod), fill=1.0)
        )
        self.register_buffer("log_batch_shift", as_buffer(log_batch_shift, (n_batch, n_input)))

    # ------------------------------------------------------------ transforms
    def count_batch_offset(self) -> torch.Tensor | None:
        """Per-batch gene log fold changes of the count decoder, if it has them."""
        return None

    def transform(self, x: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        """Data to encoder input (see :class:`~gde.module.SetModuleBase`)."""
        b = batch_index.squeeze(-1).long()
        if self.data_kind == "continuous":
            z = (x - self.feature_mean) / self.feature_std
            if self.correct_encoder_input and self.n_batch > 1:
                z = z - self.batch_shift[b]
            return z
        offset = self.count_batch_offset()
        correct = self.correct_encoder_input and self.n_batch > 1
        if offset is not None and self.correct_encoder_input:
            x = x * torch.exp(-offset.detach())[b]
        if self.input_transform == "log1p_cp10k":
            x = self._log_normalize(x)
            return x - self.log_batch_shift[b] if correct else x
        return torch.log1p(x)

    def _log_normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``log1p`` of counts per 10,000, per modality."""
        blocks = split_segments(x, self.modality_sizes)
        return torch.cat(
            [torch.log1p(p / p.sum(-1, keepdim=True).clamp_min(1e-8) * 1e4) for p in blocks],
            dim=-1,
        )

    def to_data_scale(self, h: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`transform` for continuous data."""
        if self.correct_encoder_input and self.n_batch > 1:
            h = h + self.batch_shift[batch_index.squeeze(-1).long()]
        return h * self.feature_std + self.feature_mean

    def input_counts(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """The modelled features of a minibatch: genes, then proteins if registered."""
        x = tensors[GDE_KEYS.X_KEY]
        if self.modality_sizes is not None and GDE_KEYS.PROTEIN_KEY in tensors:
            x = torch.cat([x, tensors[GDE_KEYS.PROTEIN_KEY].to(x)], dim=-1)
        return x

    # ------------------------------------------------------------ covariates
    @staticmethod
    def _split_cats(
        batch_index: torch.Tensor, cat_covs: torch.Tensor | None
    ) -> list[torch.Tensor]:
        # (..., k) -> k tensors of shape (..., 1)
        cats = [batch_index]
        if cat_covs is not None:
            cats += list(torch.split(cat_covs, 1, dim=-1))
        return [c.long() for c in cats]

    def _encoder_covariates(
        self, cats: list[torch.Tensor], cont_covs: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        if not self.encode_covariates:
            return [], None
        return cats, cont_covs if self.n_continuous_cov else None

    def _flat_covariates(
        self,
        n: int,
        batch_index: torch.Tensor,
        cat_covs: torch.Tensor | None,
        cont_covs: torch.Tensor | None,
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        # (..., 1) -> (n_cells, 1) per covariate
        cats = [c.reshape(n, 1) for c in self._split_cats(batch_index, cat_covs)]
        cont = cont_covs.reshape(n, -1) if self.n_continuous_cov else None
        return cats, cont

    def covariate_vector(
        self, cats: Sequence[torch.Tensor], cont: torch.Tensor | None
    ) -> torch.Tensor | None:
        """One-hot categorical and raw continuous covariates, ``(n, k)``, or ``None``."""
        parts = one_hot_covariates(cats, self.cat_list)
        if self.n_continuous_cov and cont is not None:
            parts.append(cont)
        return torch.cat(parts, dim=-1) if parts else None

    def condition(
        self, z: torch.Tensor, cats: Sequence[torch.Tensor], cont: torch.Tensor | None
    ) -> torch.Tensor:
        """Decoder condition of each element: its set embedding, then its covariates."""
        covs = self.covariate_vector(cats, cont)
        return z if covs is None else torch.cat([z, covs], dim=-1)

    @property
    def n_covariate_features(self) -> int:
        """Width of :meth:`covariate_vector`."""
        return sum(n for n in self.cat_list if n > 1) + self.n_continuous_cov
