"""Wan 2.1 VAE latent normalisation: the DiT works on ``(z - mean) / std`` per channel.

The constants are the published per-channel statistics of the Wan 2.1 VAE latents; a
native ComfyUI VAE encode/decode works on the raw ``z``.
"""
from __future__ import annotations

import torch

LATENT_CHANNELS = 16
SPATIAL_STRIDE = 8

LATENTS_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)
LATENTS_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)


def _stats(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1, LATENT_CHANNELS) + (1,) * (like.ndim - 2)
    mean = torch.tensor(LATENTS_MEAN, device=like.device, dtype=like.dtype).view(shape)
    std = torch.tensor(LATENTS_STD, device=like.device, dtype=like.dtype).view(shape)
    return mean, std


def normalize(z: torch.Tensor) -> torch.Tensor:
    """Raw VAE latents ``[B, 16, ...]`` -> the DiT's space."""
    mean, std = _stats(z)
    return (z - mean) / std


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """The DiT's space -> raw VAE latents ``[B, 16, ...]`` (what ComfyUI's VAEDecode takes)."""
    mean, std = _stats(x)
    return x * std + mean


def latent_rgb(samples: torch.Tensor, factors: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Approximate colours of raw latents ``[1, 16, T, h, w]`` by a linear map (the one of a
    live preview: ``factors [16, 3]``, ``bias [3]``) -> IMAGE ``[T, h, w, 3]`` in 0..1."""
    lat = samples[0].float().cpu().permute(1, 2, 3, 0)  # [T, h, w, 16]
    return ((lat @ factors.float() + bias.float() + 1) / 2).clamp(0, 1)
