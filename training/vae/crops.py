"""Training crops for the VAE: short clips cut from the samples' frames and normal maps.

The VAE is fully convolutional and causal in time (first frame alone, then groups of 4),
so it is trained on ``1 + 4k`` frame crops of a few latent pixels: cheap steps that
still see both the first-frame and the 4-frame path. Normal maps are mixed in because the
sampler encodes them with the same VAE (DESIGN.md: the normal-map latent).
"""
from __future__ import annotations

import random
from pathlib import Path

import torch

from ..data.manifest import read_manifests
from ..data.sample import read_sample, to_float_images


class CropSource:
    """Random crops ``[B, 3, frames, size, size]`` in -1..1 from a data folder's samples,
    held in memory as uint8 (1000 clips of 128x128x17 are 1.7 GB with their normal maps)."""

    def __init__(self, root: str | Path, *, limit: int | None = None, normal_fraction: float = 0.3):
        entries = read_manifests(root)[:limit]
        if not entries:
            raise ValueError(f"{root}: no listed samples (generate them with training/generate_synthetic.py)")
        self.frames, self.normals = [], []
        for entry in entries:
            sample = read_sample(Path(root) / entry["file"])
            self.frames.append(sample.frames)
            self.normals.append(sample.normal_maps)
        self.normal_fraction = normal_fraction

    def __len__(self) -> int:
        return len(self.frames)

    def batch(self, rng: random.Random, batch_size: int, frames: int, size: int) -> torch.Tensor:
        clips = []
        for _ in range(batch_size):
            i = rng.randrange(len(self.frames))
            video = self.normals[i] if rng.random() < self.normal_fraction else self.frames[i]
            F, H, W, _ = video.shape
            t, y, x = rng.randrange(F - frames + 1), rng.randrange(H - size + 1), rng.randrange(W - size + 1)
            clip = to_float_images(video[t:t + frames, y:y + size, x:x + size])
            if rng.random() < 0.5:
                clip = clip.flip(2)  # mirror: more views of the same content
            clips.append(clip.movedim(-1, 0))
        return torch.stack(clips) * 2 - 1
