"""Independent, deliberately naive reference geometry for the unit tests.

Nothing here reuses the shortcuts of ``models/camera/plucker.py`` (shared basis images, the
closed-form camera-to-world): every ray is built the textbook way, per frame, with an
explicit pixel-intrinsics matrix inverted by ``torch.linalg.inv``, the camera pose inverted
by ``torch.linalg.inv`` and an explicit cross product, all in float64.
"""
from __future__ import annotations

import torch


def pixel_grid(width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Continuous coordinates of the pixel centres ``(u + 0.5, v + 0.5)``, each ``[H, W]``."""
    v, u = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
        indexing="ij",
    )
    return u + 0.5, v + 0.5


def pixel_matrix(focal: float, pixel_aspect: float, principal, width: int, height: int) -> torch.Tensor:
    """The 3x3 pixel intrinsics written from the documented convention (not from the code):
    ``fy = focal * H``, ``fx = pixel_aspect * fy``, ``cx = principal[0] * W``, ``cy = principal[1] * H``."""
    fy = float(focal) * height
    fx = float(pixel_aspect) * fy
    cx, cy = float(principal[0]) * width, float(principal[1]) * height
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float64)


def naive_rays_at(camera, width: int, height: int, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Plücker rays ``[F, 6, *xs.shape]`` (float64) through continuous pixel coordinates
    ``(xs, ys)`` of a ``width`` x ``height`` image: ``d = normalize(R_c2w K^-1 [x, y, 1])``,
    ``o`` = camera centre, channels ``(o x d, d)``."""
    out = []
    for f in range(camera.num_frames):
        k = pixel_matrix(camera.focal[f], camera.pixel_aspect[f], camera.principal[f], width, height)
        k_inv = torch.linalg.inv(k)
        c2w = torch.linalg.inv(camera.w2c[f].double())
        pix = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1)  # [..., 3]
        cam_dirs = pix @ k_inv.T
        world = cam_dirs @ c2w[:3, :3].T
        d = world / world.norm(dim=-1, keepdim=True)
        o = c2w[:3, 3].expand_as(d)
        m = torch.linalg.cross(o, d, dim=-1)
        out.append(torch.cat([m, d], dim=-1).movedim(-1, 0))
    return torch.stack(out)


def naive_rays(camera, width: int, height: int) -> torch.Tensor:
    """Reference ``plucker_rays``: ``[F, 6, H, W]`` float64 at the pixel centres."""
    xs, ys = pixel_grid(width, height)
    return naive_rays_at(camera, width, height, xs, ys)


def naive_pack(rays: torch.Tensor) -> torch.Tensor:
    """Wan packing written out with loops: ``[F, 6, H, W]`` -> ``[1, 24, T, H, W]`` with
    groups ``[0,0,0,0], [1..4], [5..8], ...`` and channel ``4c + k``."""
    num_frames = rays.shape[0]
    assert (num_frames - 1) % 4 == 0
    groups = [[0, 0, 0, 0]] + [[1 + 4 * t + k for k in range(4)] for t in range((num_frames - 1) // 4)]
    out = torch.zeros(1, 24, len(groups), *rays.shape[2:], dtype=rays.dtype)
    for t, group in enumerate(groups):
        for k, frame in enumerate(group):
            for c in range(6):
                out[0, 4 * c + k, t] = rays[frame, c]
    return out


def rotation_angle(r: torch.Tensor) -> torch.Tensor:
    """Angle (radians) of rotation matrices ``[..., 3, 3]``, accurate near zero."""
    skew = r - r.transpose(-1, -2)
    sin = torch.stack([skew[..., 2, 1], skew[..., 0, 2], skew[..., 1, 0]], -1).norm(dim=-1) / 2
    cos = (r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.atan2(sin, cos)


def orbit_angles(centres: torch.Tensor, target) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Yaw and pitch (degrees) and distance of camera centres around ``target``, from the
    DESIGN.md convention: frontal = +Z, yaw toward +X, pitch toward +Y."""
    off = centres - torch.as_tensor(target, dtype=torch.float64)
    dist = off.norm(dim=-1)
    yaw = torch.rad2deg(torch.atan2(off[:, 0], off[:, 2]))
    pitch = torch.rad2deg(torch.asin(off[:, 1] / dist))
    return yaw, pitch, dist
