"""Depth and coverage of a scene: meshes (the body, the avatar's layer) and, behind them, a
background plane, seen by a camera.

The meshes go through the pack's rasterizer (``render/rasterize.py``: exact coverage,
perspective-correct depth at pixel centres, read from its z-buffer: no barycentrics). The
plane's depth is analytic: a pixel's ray ``X = C + t d`` (``d = R^T K^-1 (u, v, 1)``, so
``t`` is the camera-space depth) meets the plane ``n . X = c`` at ``t = (c - n . C) / (n . d)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..camera.trajectory import CameraTrajectory
from ..render import rasterize as rz


@dataclass(frozen=True)
class Plane:
    """The plane ``normal . X = offset`` in world space (``normal`` ``[3]``, unit)."""

    normal: Tensor
    offset: float

    @staticmethod
    def facing_camera(camera: CameraTrajectory, depth: float) -> Plane:
        """The plane ``z = depth`` of the first frame's camera space."""
        c2w = camera.c2w[0].double()
        axis = c2w[:3, 2]  # the camera's forward axis in world space
        return Plane(axis, float(axis @ (c2w[:3, 3] + depth * axis)))


def plane_depth(plane: Plane, camera: CameraTrajectory, width: int, height: int) -> Tensor:
    """Camera-space depth of the plane behind each pixel ``[F, H, W]`` (float32 metres; 0
    where the ray does not meet it in front of the camera)."""
    c2w = camera.c2w.double()
    k_inv = torch.linalg.inv(camera.intrinsics(width, height).double())
    u = torch.arange(width, dtype=torch.float64) + 0.5
    v = torch.arange(height, dtype=torch.float64) + 0.5
    # n . d = n^T R K^-1 (u, v, 1): one row vector per frame, dotted with the pixels.
    row = torch.einsum("i,fij,fjk->fk", plane.normal.double(), c2w[:, :3, :3], k_inv)  # [F, 3]
    denominator = row[:, 0, None, None] * u + row[:, 1, None, None] * v[:, None] + row[:, 2, None, None]
    numerator = plane.offset - c2w[:, :3, 3] @ plane.normal.double()  # [F]
    safe = torch.where(denominator.abs() > 1e-12, denominator, torch.full_like(denominator, 1e-12))
    t = numerator[:, None, None] / safe
    return torch.where(t > 0, t, 0.0).float()


def render_depth(vertices: Tensor, faces: Tensor, camera: CameraTrajectory, width: int, height: int,
                 plane: Plane | None = None) -> tuple[Tensor, Tensor]:
    """Depth ``[F, H, W]`` (float32 metres, 0 = nothing) and the meshes' coverage ``[F, H, W]``
    (bool) of world ``vertices [F, V, 3]`` (``faces [M, 3]``) and the optional background plane
    seen by ``camera`` (``F`` frames or one)."""
    verts, k = rz.camera_space(vertices, camera, width, height)
    depth = rz.rasterize_depth(verts, faces, k, width, height, frames_per_chunk=verts.shape[0])
    covered = depth > 0
    if plane is not None:
        behind = plane_depth(plane, camera, width, height).expand_as(depth)
        depth = torch.where(covered, depth, behind)
    return depth, covered
