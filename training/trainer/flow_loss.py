"""The rectified-flow training loss, on the sampler's own schedule (one home:
``models.sampling.schedule``).

The sampler integrates ``dx/dsigma = v`` from noise (sigma = 1) to data (sigma = 0) along
``x_sigma = (1 - sigma) x0 + sigma * noise``, so the network is trained to predict
``v = noise - x0`` at ``x_sigma``, conditioned on the timestep ``sigma * 1000``. Training
sigmas are logit-normal (``sigmoid(N(mean, std))``, as SD3 and Wan trainers draw them) and
then moved by the same shift the sampler applies (``shift_sigma``), so training spends its
steps where sampling does. The reference slot is not in the loss: the DiT drops slot 0
from its output (``FactorPortraitDiT.forward``), so only the video slots are compared.
"""
from __future__ import annotations

import torch

from ...models.sampling.schedule import model_timestep, shift_sigma
from .randomness import generator


def training_sigmas(seed: int, step: int, samples: list[int], *, shift: float, mean: float = 0.0,
                    std: float = 1.0) -> torch.Tensor:
    """One sigma per sample ``[B]`` (float32 in (0, 1)), drawn for its (step, sample) position."""
    u = torch.cat([torch.randn(1, generator=generator(seed, step, s, purpose="timestep")) for s in samples])
    return shift_sigma(torch.sigmoid(mean + std * u), shift).float()


def training_noise(seed: int, step: int, samples: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """Standard normal noise ``[B, *shape]`` for the samples at ``step`` (CPU float32)."""
    return torch.stack([torch.randn(shape, generator=generator(seed, step, s, purpose="noise")) for s in samples])


def noised(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x_sigma`` and the velocity target ``noise - x0``; ``x0, noise [B, C, T, h, w]``, ``sigma [B]``."""
    s = sigma.view(-1, *([1] * (x0.ndim - 1))).to(x0)
    return (1 - s) * x0 + s * noise, noise - x0


def flow_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample, then over the batch: ``[B, ...]`` -> scalar (float32)."""
    return (prediction.float() - target.float()).square().flatten(1).mean(1).mean()


def timesteps(sigma: torch.Tensor) -> torch.Tensor:
    """The DiT's timestep input for ``sigma [B]``."""
    return model_timestep(sigma)
