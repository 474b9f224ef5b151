"""The VAE's training loss: reconstruction of clips decoded from slightly noised latents.

Noise of a tenth of each latent channel's own spread (measured on the batch) makes the
decoder tolerant of the DiT's imperfect samples, whatever scale the encoder settles on.
The scale itself does not matter here: after training, ``latent_statistics`` maps the
latents onto Wan 2.1's published per-channel statistics exactly (the encoder's and the
decoder's 1x1 latent convolutions absorb the affine map).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def gradient_l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L1 between the spatial finite differences of two videos ``[B, 3, F, H, W]`` (edges)."""
    dx = lambda v: v[..., :, 1:] - v[..., :, :-1]  # noqa: E731
    dy = lambda v: v[..., 1:, :] - v[..., :-1, :]  # noqa: E731
    return F.l1_loss(dx(x), dx(y)) + F.l1_loss(dy(x), dy(y))


def vae_loss(vae, x: torch.Tensor, *, latent_noise: float = 0.1,
             edge_weight: float = 0.5) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of ComfyUI's ``WanVAE`` on clips ``x [B, 3, F, H, W]`` in -1..1."""
    z = vae.encode(x)
    spread = z.detach().transpose(0, 1).flatten(1).std(1).view(1, -1, 1, 1, 1)
    out = vae.decode(z + latent_noise * spread * torch.randn_like(z))
    l1, mse = F.l1_loss(out, x), F.mse_loss(out, x)
    edges = gradient_l1(out, x)
    loss = l1 + mse + edge_weight * edges
    psnr = 10 * torch.log10(4.0 / mse.detach().clamp_min(1e-10))  # value range 2 (-1..1)
    return loss, {"loss": loss.item(), "l1": l1.item(), "edges": edges.item(), "psnr_db": psnr.item()}
