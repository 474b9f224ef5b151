"""Generating a held-out clip again from its controls, with all of them or one removed.

Variants (``VARIANTS``):

- ``full``: reference, ray maps, normal maps and expression codes of the clip;
- ``cross_identity``: the same controls with the reference of another clip (identity);
- ``no_normals`` / ``no_expression`` / ``no_rays``: that control zeroed (its null input);
- ``untrained``: every control, on the same network before training.

Conditions are built as the FactorPortrait Sampler builds them (the VAE encodes the
reference and the normal maps; rays come from ``latent_plucker_rays`` of the clip's camera)
and sampled with ``models.portrait.sampler.generate``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ...models.portrait.dit import FactorPortraitDiT
from ...models.wan.latent_frames import latent_frame_count
from ...models.camera.plucker import latent_plucker_rays
from ...models.portrait.sampler import PortraitConditions, generate
from ...models.wan import latent_format
from ..data.sample import ClipSample, to_float_images

VARIANTS = ("full", "cross_identity", "no_normals", "no_expression", "no_rays", "untrained")


@dataclass(frozen=True)
class SamplerSettings:
    steps: int = 20
    cfg: float = 1.0
    expression_cfg: float = 1.0
    shift: float = 3.0
    solver: str = "unipc"
    seed: int = 0


@torch.no_grad()
def encode(vae, images: torch.Tensor) -> torch.Tensor:
    """IMAGE ``[F, H, W, 3]`` -> normalised latents ``[1, 16, T, h, w]`` (ComfyUI's VAE)."""
    return latent_format.normalize(vae.encode(images[..., :3]).float())


@torch.no_grad()
def decode(vae, latent: torch.Tensor) -> torch.Tensor:
    """Normalised latents ``[1, 16, T, h, w]`` -> IMAGE ``[F, H, W, 3]``."""
    images = vae.decode(latent_format.denormalize(latent))
    return images.reshape(-1, *images.shape[-3:]).float().cpu()


def clip_conditions(vae, sample: ClipSample, reference: ClipSample | None = None) -> PortraitConditions:
    """The controls of ``sample`` (with ``reference``'s reference image when given)."""
    H, W = sample.frames.shape[1:3]
    ref = (reference or sample).reference
    return PortraitConditions(
        reference=encode(vae, to_float_images(ref[None])),
        rays=latent_plucker_rays(sample.camera, W, H),
        normals=encode(vae, to_float_images(sample.normal_maps)),
        expression=sample.expression[None].float(),
    )


def variant_conditions(conditions: PortraitConditions, variant: str) -> PortraitConditions:
    if variant == "no_normals":
        return replace(conditions, normals=None)
    if variant == "no_expression":
        return replace(conditions, expression=None)
    if variant == "no_rays":
        return replace(conditions, rays=None)
    return conditions


def generate_clip_video(model: FactorPortraitDiT, vae, conditions: PortraitConditions, frames: int,
                        settings: SamplerSettings) -> torch.Tensor:
    """Sample and decode -> IMAGE ``[frames, H, W, 3]``."""
    latent = generate(model, conditions, num_latent_frames=latent_frame_count(frames), seed=settings.seed,
                      steps=settings.steps, cfg=settings.cfg, expression_cfg=settings.expression_cfg,
                      shift=settings.shift, solver=settings.solver)
    return decode(vae, latent)[:frames]
