"""Control-by-control evaluation of a model on held-out clips -> figures per variant.

Besides the generated variants (``variants.VARIANTS``), ``ground_truth`` measures the
clips' own frames: the ceiling the measuring tools (the ARKit encoder, the body tracker)
reach at this resolution; ``vae_round_trip`` measures those frames encoded and decoded by
the VAE: the ceiling of any DiT that draws through that VAE. A model's figures are read
against both.
"""
from __future__ import annotations

import time
from typing import Callable

import torch

from ...models.evaluation.measure import ClipMeasurement, measure_clip, summarize
from ...models.portrait.dit import FactorPortraitDiT
from ..data.sample import to_float_images
from .held_out import HeldOutClip
from .variants import SamplerSettings, clip_conditions, decode, encode, generate_clip_video, variant_conditions

IMAGE_VARIANTS = ("full", "no_normals", "no_expression", "no_rays", "untrained", "ground_truth", "vae_round_trip")


def evaluate_variants(model: FactorPortraitDiT, untrained: FactorPortraitDiT | None, vae, clips: list[HeldOutClip],
                      variants: tuple[str, ...], *, body_model, encoder, settings: SamplerSettings = SamplerSettings(),
                      keep_frames: int = 0, log: Callable[[str], None] = print) -> tuple[dict, dict]:
    """Figures ``{variant: summarize(...)}`` and the first ``keep_frames`` clips' videos
    ``{variant: [IMAGE [F, H, W, 3], ...]}`` (for strips)."""
    measured: dict[str, list[ClipMeasurement]] = {v: [] for v in variants}
    videos: dict[str, list[torch.Tensor]] = {v: [] for v in variants}
    for i, clip in enumerate(clips):
        sample = clip.sample
        frames = sample.num_frames
        fov = float(sample.camera.fov[0])
        truth = to_float_images(sample.frames)
        mask = sample.mask.float() if sample.mask is not None else None
        for variant in variants:
            started = time.perf_counter()
            if variant == "ground_truth":
                video = truth
            elif variant == "vae_round_trip":
                video = decode(vae, encode(vae, truth))[:frames]
            else:
                other = clips[(i + 1) % len(clips)].sample if variant == "cross_identity" else None
                conditions = variant_conditions(clip_conditions(vae, sample, other), variant)
                network = untrained if variant == "untrained" else model
                if network is None:
                    continue
                video = generate_clip_video(network, vae, conditions, frames, settings)
            images = variant in IMAGE_VARIANTS  # cross-identity has no ground-truth frames
            measured[variant].append(measure_clip(
                video, driving_expression=sample.expression, head_rotation=clip.head_rotation,
                ground_truth=truth if images else None, body_mask=mask if images else None,
                encoder=encoder, body_model=body_model, fov_deg=fov))
            if i < keep_frames:
                videos[variant].append(video)
            log(f"clip {i + 1}/{len(clips)} {variant}: {time.perf_counter() - started:.1f} s")
    return {v: summarize(m) for v, m in measured.items() if m}, videos
