"""Shade normal maps into plain RGB images: a synthetic "video" of a mesh for tests and benchmarks.

Landmark detectors (MediaPipe, DWPose) need something that looks like a lit face, not a
normal map. Lambert shading with an ambient term from a DESIGN.md-encoded normal map is
enough for them to find a face on a bald template mesh, and because the mesh, its
parameters and the camera are known, the detections can be checked against ground truth.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..errors import InputError

SKIN = (0.85, 0.65, 0.55)
BACKGROUND = (0.2, 0.25, 0.3)
# Up, right and toward the viewer (the normal map's axes): a key light above-right of the camera.
LIGHT = (0.3, 0.4, 0.85)


def shade_normal_maps(normals: torch.Tensor, mask: torch.Tensor, *,
                      skin: Sequence[float] = SKIN, background: Sequence[float] = BACKGROUND,
                      light: Sequence[float] = LIGHT, ambient: float = 0.15,
                      diffuse: float = 0.8) -> torch.Tensor:
    """Lambert-shaded images of normal maps.

    Args:
        normals: camera-space normals ``[F, H, W, 3]`` encoded ``(n + 1) / 2`` with +x right,
            +y up, +z toward the viewer (DESIGN.md; ``render_normal_maps`` output).
        mask: ``[F, H, W]``, 1 on the surface (blended, so soft edges stay soft).
        skin: RGB albedo in 0..1.
        background: RGB of pixels off the mask.
        light: direction toward the light, in the normal map's axes (normalised here).
        ambient: light that reaches every surface pixel, also those facing away.
        diffuse: strength of the directional light.
    Returns:
        images ``[F, H, W, 3]`` in 0..1, on the normals' device and dtype (a ComfyUI IMAGE).
    """
    if normals.ndim != 4 or normals.shape[-1] != 3:
        raise InputError("normals", f"expected [frames, height, width, 3], got {tuple(normals.shape)}.")
    if tuple(mask.shape) != tuple(normals.shape[:3]):
        raise InputError("mask", f"expected {tuple(normals.shape[:3])} like the normals, got {tuple(mask.shape)}.")
    as_vec = lambda v: torch.as_tensor(v, dtype=normals.dtype, device=normals.device)  # noqa: E731
    direction = as_vec(light)
    direction = direction / direction.norm().clamp(min=1e-12)
    n = normals * 2 - 1
    lambert = (n @ direction).clamp(min=0)  # [F, H, W]
    surface = (ambient + diffuse * lambert)[..., None] * as_vec(skin)
    alpha = mask.to(normals.dtype)[..., None]
    return (alpha * surface + (1 - alpha) * as_vec(background)).clamp(0, 1)
