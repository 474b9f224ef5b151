"""The fixed held-out test set: synthetic clips of a seed no training set uses.

Identities, rooms, expressions and cameras are all drawn from ``(seed, index)``, so a seed
other than the training data's (0) gives clips the model never saw. The clips are made on
the fly (about half a second each) rather than shipped, and are the same on every machine.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...models.body.anny_model import AnnyUpperBody
from ...models.evaluation.head_pose import head_rotations
from ..data.sample import ClipSample
from ..synthetic.appearance import Appearance
from ..synthetic.generate import generate_clip
from ..synthetic.render import avatar_params

HELD_OUT_SEED = 1000  # training data: seed 0 (training/configs/demo_128px.toml)


@dataclass
class HeldOutClip:
    sample: ClipSample
    head_rotation: torch.Tensor  # [F, 3, 3], the true head rotation in camera space


def true_head_rotation(model: AnnyUpperBody, sample: ClipSample) -> torch.Tensor:
    """Camera-space head rotations ``[F, 3, 3]`` of a synthetic clip, from its metadata."""
    info = sample.info
    pose = {k: torch.tensor(v, dtype=torch.float32) for k, v in info["pose"].items()}
    params = avatar_params(model, Appearance.from_json(info["identity"]), sample.expression, pose)
    return head_rotations(model, params, sample.camera)


def held_out_clips(model: AnnyUpperBody, count: int, *, seed: int = HELD_OUT_SEED, frames: int = 17,
                   width: int = 128, height: int = 128) -> list[HeldOutClip]:
    clips = []
    for index in range(count):
        sample = generate_clip(model, seed, index, frames=frames, width=width, height=height)
        clips.append(HeldOutClip(sample, true_head_rotation(model, sample)))
    return clips
