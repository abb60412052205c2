"""DDPM noise schedule: forward noising and reverse steps, no network inside."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

Schedule = Literal["linear", "cosine"]
EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _betas(
    n_steps: int, schedule: Schedule, beta_start: float, beta_end: float, max_beta: float
) -> np.ndarray:
    if schedule == "linear":
        return np.linspace(beta_start, beta_end, n_steps, dtype=np.float64)
    elif schedule == "cosine":
        s = 0.008  # Nichol & Dhariwal (2021)
        t = np.arange(n_steps + 1, dtype=np.float64) / n_steps
        f = np.cos((t + s) / (1 + s) * np.pi / 2) ** 2
        alphas_cumprod = f / f[0]
        return np.minimum(1.0 - alphas_cumprod[1:] / alphas_cumprod[:-1], max_beta)
    else:
        raise ValueError(f"schedule must be 'linear' or 'cosine', got {schedule!r}.")


class NoiseSchedule:
    """Variance schedule of a denoising diffusion model (DDPM) with ε-prediction.

    Holds the schedule's constants and the maths of the forward process
    ``x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε`` and of the reverse steps; the network that
    predicts ε is passed in when sampling.

    Parameters
    ----------
    n_steps
        Number of diffusion steps ``T``.
    schedule
        ``"cosine"`` (Nichol & Dhariwal, 2021) or ``"linear"`` (Ho et al., 2020).
    beta_start, beta_end
        First and last β of the linear schedule. By default Ho et al.'s 1e-4 and 0.02 for
        ``T = 1000``, scaled by ``1000 / T`` for other ``T`` (Nichol & Dhariwal, 2021), so
        that ᾱ_T is close to 0 (about 4e-5) whatever ``T``: the last step is then pure
        noise, the sampler's starting point. (Without the scaling, ``T = 400`` leaves
        ᾱ_T ≈ 0.02 and the samples' mean is biased.)
    max_beta
        Upper bound on β in the cosine schedule.
    """

    def __init__(
        self,
        n_steps: int = 1000,
        schedule: Schedule = "cosine",
        beta_start: float | None = None,
        beta_end: float | None = None,
        max_beta: float = 0.999,
    ):
        if n_steps < 1:
            raise ValueError("n_steps must be a positive integer.")
        scale = 1000.0 / n_steps
        beta_start = 1e-4 * scale if beta_start is None else beta_start
        beta_end = min(0.02 * scale, max_beta) if beta_end is None else beta_end
        self.n_steps = int(n_steps)
        self.schedule = schedule
        betas = _betas(self.n_steps, schedule, beta_start, beta_end, max_beta)
        alphas = 1.0 - betas
        alphas_cumprod = np.cumprod(alphas)
        alphas_cumprod_prev = np.concatenate([[1.0], alphas_cumprod[:-1]])
        self.betas = torch.as_tensor(betas)
        self.alphas = torch.as_tensor(alphas)
        self.alphas_cumprod = torch.as_tensor(alphas_cumprod)
        self.alphas_cumprod_prev = torch.as_tensor(alphas_cumprod_prev)
        #: variance of q(x_{t-1} | x_t, x_0), the "fixed small" variance of ancestral steps
        self.posterior_variance = torch.as_tensor(
            betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        )

    def __repr__(self) -> str:
        return f"NoiseSchedule(n_steps={self.n_steps}, schedule={self.schedule!r})"

    @staticmethod
    def _at(values: torch.Tensor, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """``values[t]`` shaped to broadcast against ``like`` (``(n, 1, ..., 1)``)."""
        if isinstance(t, int):
            return values[t].to(device=like.device, dtype=like.dtype)
        out = values.to(like.device)[t.long().to(like.device)].to(like.dtype)
        return out.reshape(-1, *([1] * (like.dim() - 1)))

    def steps_within(self, interval: tuple[float, float] | None) -> tuple[int, int] | None:
        """Timesteps ``(lo, hi)`` of the fraction ``interval`` of the diffusion time.

        ``interval = (a, b)``, ``0 <= a < b <= 1``, 0 the clean data and 1 pure noise: the
        steps ``t`` with ``a <= t / T < b``. ``None``: ``None`` (every step).
        """
        if interval is None:
            return None
        a, b = (float(v) for v in interval)
        if not 0.0 <= a < b <= 1.0:
            raise ValueError(
                f"guidance_interval is (start, end) with 0 <= start < end <= 1 (fractions "
                f"of the diffusion time, 1 = pure noise); got {tuple(interval)}."
            )
        return math.ceil(a * self.n_steps), math.ceil(b * self.n_steps)

    def sample_timesteps(
        self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Uniform random timesteps ``0..T-1`` for training, shape ``(n,)``."""
        return torch.randint(0, self.n_steps, (n,), device=device, generator=generator)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Forward process: ``sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) noise`` for each row's ``t``."""
        ab = self._at(self.alphas_cumprod, t, x0)
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise

    def denoising_loss(
        self,
        denoiser: Callable,
        x0: torch.Tensor,
        cond: torch.Tensor,
        fixed_noise: bool = False,
    ) -> torch.Tensor:
        """Per-element loss ``||ε - ε_θ(x_t, t, c)||²`` at random timesteps, ``(n,)``.

        Summed over every axis but the first (features, or channels × pixels).
        ``fixed_noise``: the same timesteps and noise at every call (validation).
        """
        generator = None
        if fixed_noise:
            generator = torch.Generator(device=x0.device).manual_seed(0)
        t = self.sample_timesteps(x0.shape[0], x0.device, generator)
        noise = torch.randn(x0.shape, device=x0.device, generator=generator)
        eps = denoiser(self.add_noise(x0, noise, t), t, cond)
        return (eps - noise).pow(2).flatten(1).sum(-1)

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | int):
        """Estimate of ``x_0`` from ``x_t`` and predicted noise."""
        ab = self._at(self.alphas_cumprod, t, x_t)
        return (x_t - (1.0 - ab).sqrt() * eps) / ab.sqrt()

    def step(
        self,
        eps: torch.Tensor,
        t: int,
        x_t: torch.Tensor,
        generator: torch.Generator | None = None,
        clip_x0: float | None = None,
    ) -> torch.Tensor:
        """One ancestral (DDPM) reverse step from ``t`` to ``t - 1``.

        The mean is that of ``q(x_{t-1} | x_t, x̂_0)`` with ``x̂_0`` predicted from ε,
        i.e. ``(x_t - β_t / sqrt(1 - ᾱ_t) ε) / sqrt(α_t)`` when ``x̂_0`` is not clipped;
        the variance is ``β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t)``; no noise is added at ``t = 0``.
        ``clip_x0`` bounds ``|x̂_0|``, which keeps the first, nearly pure-noise steps from
        amplifying small errors of ε.
        """
        beta = self._at(self.betas, t, x_t)
        alpha = self._at(self.alphas, t, x_t)
        ab = self._at(self.alphas_cumprod, t, x_t)
        ab_prev = self._at(self.alphas_cumprod_prev, t, x_t)
        x0 = self.predict_x0(x_t, eps, t)
        if clip_x0 is not None:
            x0 = x0.clamp(-clip_x0, clip_x0)
        mean = (ab_prev.sqrt() * beta * x0 + alpha.sqrt() * (1.0 - ab_prev) * x_t) / (1.0 - ab)
        if t == 0:
            return mean
        var = self._at(self.posterior_variance, t, x_t)
        noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return mean + var.sqrt() * noise

    def ddim_step(
        self,
        eps: torch.Tensor,
        t: int,
        t_prev: int,
        x_t: torch.Tensor,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        clip_x0: float | None = None,
    ) -> torch.Tensor:
        """One DDIM step from ``t`` to ``t_prev`` (``-1`` for the final step to ``x_0``).

        ``eta=0`` is deterministic; ``eta=1`` matches ancestral sampling's variance.
        ``clip_x0`` bounds ``|x̂_0|`` (ε is then recomputed from the clipped ``x̂_0``).
        """
        ab = self._at(self.alphas_cumprod, t, x_t)
        ab_prev = (
            self._at(self.alphas_cumprod, t_prev, x_t)
            if t_prev >= 0
            else torch.ones((), dtype=x_t.dtype, device=x_t.device)
        )
        x0 = (x_t - (1.0 - ab).sqrt() * eps) / ab.sqrt()
        if clip_x0 is not None:
            x0 = x0.clamp(-clip_x0, clip_x0)
            eps = (x_t - ab.sqrt() * x0) / (1.0 - ab).sqrt()
        sigma = eta * ((1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev)).clamp_min(0).sqrt()
        direction = (1.0 - ab_prev - sigma**2).clamp_min(0).sqrt() * eps
        out = ab_prev.sqrt() * x0 + direction
        if eta > 0 and t_prev >= 0:
            noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
            out = out + sigma * noise
        return out

    def timesteps(self, n_inference_steps: int | None = None) -> list[int]:
        """Timesteps visited when sampling, in decreasing order.

        ``None``: every step ``T-1, ..., 0`` (ancestral sampling). Otherwise
        ``n_inference_steps`` evenly spaced steps for DDIM.
        """
        if n_inference_steps is None:
            return list(range(self.n_steps - 1, -1, -1))
        if not 1 <= n_inference_steps <= self.n_steps:
            raise ValueError(f"n_inference_steps must be in 1..{self.n_steps}.")
        steps = np.unique(np.round(np.linspace(0, self.n_steps - 1, n_inference_steps)))
        return [int(s) for s in steps[::-1]]

    @torch.no_grad()
    def sample(
        self,
        eps_fn: EpsFn,
        shape: tuple[int, ...],
        n_inference_steps: int | None = None,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        clip_x0: float | None = None,
    ) -> torch.Tensor:
        """Draw samples by running the reverse process from pure noise.

        Parameters
        ----------
        eps_fn
            ``eps_fn(x_t, t)`` returns the predicted noise; ``t`` is a ``(n,)`` tensor.
        shape
            Shape of the samples, ``(n, ...)``.
        n_inference_steps
            ``None``: full ancestral sampling over all ``T`` steps. An integer: DDIM with
            that many steps.
        eta
            DDIM stochasticity (0: deterministic).
        generator
            Random generator for reproducible draws.
        device, dtype
            Where and in what precision to sample.
        clip_x0
            Bound on ``|x̂_0|`` at every step (``None``: no clipping).
        """
        x = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        steps = self.timesteps(n_inference_steps)
        for i, t in enumerate(steps):
            t_batch = torch.full((shape[0],), t, device=device, dtype=torch.long)
            eps = eps_fn(x, t_batch)
            if n_inference_steps is None:
                x = self.step(eps, t, x, generator=generator, clip_x0=clip_x0)
            else:
                t_prev = steps[i + 1] if i + 1 < len(steps) else -1
                x = self.ddim_step(
                    eps, t, t_prev, x, eta=eta, generator=generator, clip_x0=clip_x0
                )
        return x
