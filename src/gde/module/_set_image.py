"""Set module for images: pixels + convolutional features into the set encoder, U-Net DDPM."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gde._constants import GDE_KEYS
from gde.nn import ConditionalUNet, ImageFeaturizer, NoiseSchedule, Schedule

from ._elements import ElementSetModule


def scale_pixels(x, pixel_range: tuple[float, float]):
    """Pixels in data units to ``[-1, 1]``: ``pixel_range`` maps to -1 and 1."""
    low, high = pixel_range
    return (x - low) * (2.0 / (high - low)) - 1.0


class SetImageModule(ElementSetModule):
    """Sets of images: each image is featurized, the set encoder pools them.

    Pixels are scaled to ``[-1, 1]`` with the range fixed at setup (``pixel_range``).
    Each image enters the set encoder as two parts: its pixels, standardised (the
    *reference features*), and learned features from :class:`gde.nn.ImageFeaturizer`.
    The principal components of the pixels, computed once from the data, are the W2
    space of the W2-matching term and start the set encoder's mean path, so the
    untrained embedding is a pixel-mean pseudobulk and training adds what it misses. A
    :class:`gde.nn.ConditionalUNet` driven by a :class:`gde.nn.NoiseSchedule` generates
    images from the set embedding (and covariates).

    Parameters
    ----------
    image_shape
        ``(C, H, W)`` of the images.
    n_batch
        Number of batches (the denoiser is conditioned on them).
    n_latent
        Dimension of the set embedding.
    n_features, featurizer_widths
        Learned features per image (0: pixels only), and the featurizer's channels per
        stage.
    pixel_range
        Pixel values mapped to -1 and 1.
    channel_axis
        The stored images have a channel axis, ``(n, C, H, W)``; else ``(n, H, W)``.
    base_channels, channel_mults
        Size of the U-Net (see :class:`gde.nn.ConditionalUNet`).
    n_diffusion_steps, noise_schedule, cond_dropout
        The diffusion process and classifier-free guidance training.
    n_decode
        Images of each set in a minibatch that the denoiser learns from (the set encoder
        reads all of them).
    reference_mean, reference_std
        Mean and standard deviation of each scaled pixel.
    reference_components, reference_center
        Principal axes ``(n_pixels, k)`` and centre of the scaled pixels.
    w2_n_comps, mean_path
        As in :class:`gde.module.SetModuleBase`.
    **kwargs
        Passed to :class:`gde.module.SetModuleBase` (set encoder, covariates, W2 term).
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        *,
        n_batch: int = 1,
        n_latent: int = 32,
        n_features: int = 32,
        featurizer_widths: Sequence[int] = (32, 64, 64),
        pixel_range: tuple[float, float] = (0.0, 1.0),
        channel_axis: bool = True,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 2),
        n_diffusion_steps: int = 400,
        noise_schedule: Schedule = "cosine",
        cond_dropout: float = 0.1,
        n_decode: int = 16,
        reference_mean: np.ndarray | None = None,
        reference_std: np.ndarray | None = None,
        reference_components: np.ndarray | None = None,
        reference_center: np.ndarray | None = None,
        w2_n_comps: int = 50,
        mean_path: bool = True,
        **kwargs,
    ):
        image_shape = tuple(int(s) for s in image_shape)
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {image_shape}.")
        low, high = (float(v) for v in pixel_range)
        if not high > low:
            raise ValueError(f"pixel_range must be (low, high), high > low; got {pixel_range}.")
        super().__init__(
            int(np.prod(image_shape)),
            n_features,
            n_decode,
            reference_mean,
            reference_std,
            n_batch=n_batch,
            n_latent=n_latent,
            reference_components=reference_components,
            reference_center=reference_center,
            w2_n_comps=w2_n_comps,
            mean_path=mean_path,
            **kwargs,
        )
        self.image_shape = image_shape
        self.pixel_range = (low, high)
        if not channel_axis and image_shape[0] != 1:
            raise ValueError("Images without a channel axis have one channel.")
        self.channel_axis = bool(channel_axis)
        self.featurizer = (
            ImageFeaturizer(image_shape[0], n_features, featurizer_widths) if n_features else None
        )
        self.denoiser = ConditionalUNet(
            image_shape[0],
            n_latent + self.n_covariate_features,
            base_channels=base_channels,
            channel_mults=channel_mults,
            cond_dropout=cond_dropout,
        )
        self.denoiser.check_shape(*image_shape[1:])
        self.noise_schedule = NoiseSchedule(n_diffusion_steps, schedule=noise_schedule)

    # ------------------------------------------------------------ features
    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels in data units ``(..., C, H, W)`` to ``[-1, 1]`` (float)."""
        x = x.to(device=self.feature_mean.device, dtype=torch.float32)
        return scale_pixels(x, self.pixel_range)

    def unscale(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`scale`."""
        low, high = self.pixel_range
        return (x + 1.0) * ((high - low) / 2.0) + low

    def input_counts(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """The images of a minibatch, ``(..., C, H, W)``, scaled once to ``[-1, 1]``.

        Everything downstream (encoder input, W2 space, denoising target) takes these.
        """
        x = tensors[GDE_KEYS.X_KEY]
        return self.scale(x if self.channel_axis else x.unsqueeze(-3))

    def reference_input(self, x: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        """Scaled pixels ``(..., n_pixels)``: what the W2 space projects."""
        return x.flatten(-3)

    # ------------------------------------------------------------ decoder
    def element_loss(self, target: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Denoising loss per image (summed over pixels)."""
        return self.noise_schedule.denoising_loss(
            self.denoiser,
            target,
            condition,
            fixed_noise=not self.training,  # the same noise at every validation step
        )

    def draw(
        self,
        condition: torch.Tensor,
        n_steps: int | None = 50,
        guidance_scale: float = 1.0,
        eta: float = 0.0,
        guidance_interval: tuple[float, float] | None = None,
    ) -> torch.Tensor:
        """One image ``(C, H, W)`` per row of ``condition``, in data units, clipped to them.

        ``n_steps``: DDIM steps (``None``: ancestral sampling over all diffusion steps);
        ``guidance_scale``: classifier-free guidance (1: none), applied only within
        ``guidance_interval`` of the diffusion time (fractions, 1 = pure noise; ``None``:
        throughout; :meth:`gde.nn.NoiseSchedule.steps_within`). Reached through
        :meth:`generate`, which takes these as keywords.
        """
        guided_steps = self.noise_schedule.steps_within(guidance_interval)
        x = self.noise_schedule.sample(
            self.denoiser.sampler(condition, guidance_scale, guided_steps),
            (condition.shape[0], *self.image_shape),
            n_inference_steps=n_steps,
            eta=eta,
            device=condition.device,
            clip_x0=1.0,
        )
        return self.unscale(x.clamp(-1.0, 1.0))
