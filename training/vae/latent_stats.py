"""Giving a trained VAE Wan 2.1's latent statistics, exactly, by folding an affine map.

The DiT and ComfyUI's Wan latent format normalise latents with Wan 2.1's published
per-channel mean and std (``models.wan.latent_format``). A small VAE trained here has its
own statistics ``m, s``. The encoder's last layer (``conv1``, a 1x1 convolution whose first
16 outputs are the latent mean) and the decoder's first (``conv2``, 1x1) are linear, so

    z' = a * z + c,  a = STD / s,  c = MEAN - a * m

is folded into ``conv1`` and its inverse into ``conv2``: the decoded video is unchanged
and the latents have Wan's statistics.
"""
from __future__ import annotations

import random

import torch

from ...models.wan import latent_format


@torch.no_grad()
def measure_latent_statistics(vae, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std ``[16]`` of the latents of ``clips [B, 3, F, H, W]`` (-1..1)."""
    z = torch.cat([vae.encode(clip[None]) for clip in clips])  # [B, 16, T, h, w]
    flat = z.transpose(0, 1).flatten(1)
    return flat.mean(1), flat.std(1).clamp_min(1e-6)


@torch.no_grad()
def fold_latent_statistics(vae, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Rescale ``vae`` in place so latents of statistics ``mean, std [16]`` get Wan's."""
    target_mean = torch.tensor(latent_format.LATENTS_MEAN, dtype=mean.dtype)
    target_std = torch.tensor(latent_format.LATENTS_STD, dtype=std.dtype)
    a = target_std / std
    c = target_mean - a * mean
    k = mean.numel()
    enc, dec = vae.conv1, vae.conv2
    enc.weight[:k] *= a.view(-1, 1, 1, 1, 1).to(enc.weight)
    enc.bias[:k] = (a * enc.bias[:k].to(a) + c).to(enc.bias)
    w = dec.weight[:, :, 0, 0, 0].to(a)  # [out, in]
    dec.bias.copy_((dec.bias.to(a) - w @ (c / a)).to(dec.bias))
    dec.weight.copy_((w / a.view(1, -1)).view_as(dec.weight).to(dec.weight))


def statistics_clips(source, count: int = 16, frames: int = 5, seed: int = 1234) -> torch.Tensor:
    """Whole-frame clips ``[count, 3, frames, H, W]`` of a ``CropSource`` (fixed draw)."""
    size = int(source.frames[0].shape[1])
    return source.batch(random.Random(seed), count, frames, size)
