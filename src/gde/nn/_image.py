"""Image networks: a convolutional featurizer, and a conditional U-Net denoiser.

Both normalise with GroupNorm, which acts on each image alone: BatchNorm would mix the
statistics of the sets in a minibatch, leaking one set's content into another's
embedding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._denoiser import GuidedDenoiser


def _norm(n_channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups that divide ``n_channels``."""
    groups = max(g for g in (1, 2, 4, 8) if n_channels % g == 0)
    return nn.GroupNorm(groups, n_channels)


class ImageFeaturizer(nn.Module):
    """One vector per image: strided convolutions with GroupNorm, then mean pooling.

    Parameters
    ----------
    n_channels_in
        Channels of the images (1 for grey).
    n_output
        Dimension of the output vector.
    widths
        Channels of each stage; every stage after the first halves the resolution.
    """

    def __init__(
        self, n_channels_in: int, n_output: int = 32, widths: Sequence[int] = (32, 64, 64)
    ):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = n_channels_in
        for i, c in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [nn.Conv2d(c_in, c, 3, stride=stride, padding=1), _norm(c), nn.SiLU()]
            c_in = c
        self.convs = nn.Sequential(*layers)
        self.output = nn.Linear(c_in, n_output)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features ``(..., n_output)`` of images ``(..., C, H, W)``."""
        lead = images.shape[:-3]
        h = self.convs(images.reshape(-1, *images.shape[-3:]))
        return self.output(h.mean(dim=(-2, -1))).reshape(*lead, -1)


class _ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice; the embedding scales and shifts the second half."""

    def __init__(self, c_in: int, c_out: int, n_emb: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(n_emb, 2 * c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        scale, shift = self.film(emb)[..., None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(nn.functional.silu(h))


class ConditionalUNet(GuidedDenoiser):
    """U-Net predicting the noise of images ``(n, C, H, W)`` given timestep and condition.

    Every resolution has a residual block modulated by the embedding of the timestep
    and the condition (a set embedding, possibly with covariates), so both reach every
    scale; skip connections join the down and up paths. Classifier-free guidance and
    the sampler come from :class:`GuidedDenoiser`. Works for any ``H`` and ``W``
    divisible by ``2 ** (len(channel_mults) - 1)``.

    Parameters
    ----------
    n_channels
        Channels of the images.
    n_cond
        Dimension of the condition.
    base_channels
        Channels of the first resolution.
    channel_mults
        Multiple of ``base_channels`` at each resolution; each after the first halves it.
    n_time
        Dimension of the timestep embedding.
    cond_dropout
        Probability of dropping the condition for a training example.
    """

    def __init__(
        self,
        n_channels: int,
        n_cond: int,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 2),
        n_time: int = 64,
        cond_dropout: float = 0.1,
    ):
        n_emb = 4 * base_channels
        super().__init__(n_cond, n_emb, n_time, cond_dropout)
        self.factor = 2 ** (len(channel_mults) - 1)
        widths = [base_channels * m for m in channel_mults]
        self.input = nn.Conv2d(n_channels, base_channels, 3, padding=1)
        self.down = nn.ModuleList()
        c = base_channels
        for w in widths:
            self.down.append(_ResBlock(c, w, n_emb))
            c = w
        self.downsample = nn.ModuleList(
            nn.Conv2d(w, w, 3, stride=2, padding=1) for w in widths[:-1]
        )
        self.middle = _ResBlock(c, c, n_emb)
        self.up = nn.ModuleList()
        for w in reversed(widths):
            self.up.append(_ResBlock(c + w, w, n_emb))
            c = w
        # after each up block but the last: double the resolution, keep the channels
        self.upsample = nn.ModuleList(
            nn.Conv2d(w, w, 3, padding=1) for w in list(reversed(widths))[:-1]
        )
        self.output = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, n_channels, 3, padding=1))
        nn.init.zeros_(self.output[-1].weight)
        nn.init.zeros_(self.output[-1].bias)

    def check_shape(self, height: int, width: int) -> None:
        """Raise unless the U-Net can halve ``height`` and ``width`` at every level."""
        if height % self.factor or width % self.factor:
            raise ValueError(
                f"Images of {height}×{width} pixels cannot be halved "
                f"{len(self.downsample)} times: height and width must be divisible by "
                f"{self.factor}. Pad or crop the images, or use fewer channel_mults."
            )

    def denoise(self, x_t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Predicted noise ``(n, C, H, W)`` from images and one embedding row per image."""
        self.check_shape(*x_t.shape[-2:])
        h = self.input(x_t)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.middle(h, emb)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < len(self.upsample):
                h = nn.functional.interpolate(h, scale_factor=2.0, mode="nearest")
                h = self.upsample[i](h)
        return self.output(h)
