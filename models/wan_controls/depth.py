"""Depth maps as the depth estimators behind VACE's and Fun Control's training drew them:
relative inverse depth (disparity), near bright, stretched to 0..1.

VACE's depth annotator (``vace/annotators/depth.py``: MiDaS DPT-Hybrid) and Depth Anything
both predict relative inverse depth; the annotator shifts and scales each frame to 0..1 and
repeats it over the three channels. Here the stretch is over the whole clip, so a body that
walks away grows darker instead of being re-stretched each frame (a per-frame stretch makes
the brightness flicker with every change of the nearest or farthest point). Pixels where
nothing was rendered are 0 (black: as far as it gets).
"""
from __future__ import annotations

import torch
from torch import Tensor


def disparity_range(depth: Tensor) -> tuple[float, float]:
    """The smallest and largest inverse depth ``1 / z`` over the rendered pixels of ``depth``
    ``[F, H, W]`` (metres, 0 = nothing); ``(0, 1)`` when nothing was rendered."""
    farthest = float(depth.amax())
    if farthest <= 0:
        return 0.0, 1.0
    nearest = float(torch.where(depth > 0, depth, farthest).amin())
    return 1.0 / farthest, 1.0 / nearest


def merge_ranges(a: tuple[float, float] | None, b: tuple[float, float]) -> tuple[float, float]:
    """The range covering both (``a`` None: ``b``); chunks of a clip merge theirs this way."""
    return b if a is None else (min(a[0], b[0]), max(a[1], b[1]))


def depth_to_image(depth: Tensor, near_far: tuple[float, float], out: Tensor | None = None) -> Tensor:
    """Grey images ``[F, H, W, 3]`` (float32 0..1) of ``depth`` ``[F, H, W]``: inverse depth
    mapped from ``near_far = (smallest, largest)`` inverse depth to 0..1, 0 where nothing.

    Args:
        out: a ``[F, H, W, 3]`` tensor to write into (e.g. a slice of the clip's output).
    """
    low, high = near_far
    scale = 1.0 / max(high - low, 1e-12)
    inverse = torch.where(depth > 0, 1.0 / depth.clamp(min=1e-12), low)
    grey = ((inverse - low) * scale).clamp_(0.0, 1.0)
    grey = torch.where(depth > 0, grey, 0.0)
    if out is None:
        out = torch.empty(*depth.shape, 3, dtype=torch.float32, device=depth.device)
    out.copy_(grey[..., None].expand_as(out))
    return out
