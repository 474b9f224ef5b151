"""Training without a control, per sample, with the null inputs the sampler uses.

The sampler's guidance (``models.sampling.guidance``) runs up to three branches: ``uncond``
(no pose, no expression, no text), ``pose`` (no expression) and ``full``. Its null inputs
are zeros: zero normal-map latents, zero expression codes (still passed through the
expression controller) and no text; the reference and the camera rays are kept in every
branch. Training drops controls the same way, so ``cfg`` and ``expression_cfg`` have
something to extrapolate from.
"""
from __future__ import annotations

import torch

from .config import DropoutConfig
from .randomness import generator


def dropout_masks(cfg: DropoutConfig, seed: int, step: int, samples: list[int]) -> dict[str, torch.Tensor]:
    """Per-sample keep masks ``[B]`` (bool) for ``normals``, ``expression`` and ``rays``."""
    keep = {"normals": [], "expression": [], "rays": []}
    for s in samples:
        u = torch.rand(4, generator=generator(seed, step, s, purpose="dropout"))
        uncond = bool(u[0] < cfg.uncond)
        keep["normals"].append(not uncond and not bool(u[1] < cfg.normals))
        keep["expression"].append(not uncond and not bool(u[2] < cfg.expression))
        keep["rays"].append(not bool(u[3] < cfg.rays))
    return {k: torch.tensor(v) for k, v in keep.items()}


def apply_dropout(batch: dict[str, torch.Tensor], keep: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch with dropped controls zeroed (the sampler's null inputs)."""
    out = dict(batch)
    for key in ("normals", "expression", "rays"):
        mask = keep[key].to(batch[key].device).view(-1, *([1] * (batch[key].ndim - 1)))
        out[key] = batch[key] * mask.to(batch[key].dtype)
    return out
