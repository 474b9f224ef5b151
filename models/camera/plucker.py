"""Plücker ray maps of a camera trajectory, per frame and in Wan's latent packing.

A pixel centre ``(u + 0.5, v + 0.5)`` has the ray ``d = normalize(R_c2w K^-1 [u, v, 1])``
from the camera centre ``o``; its Plücker coordinates are ``(o x d, d)`` (6 channels).

Why it is fast: with ``x = (u + 0.5 - cx) / fx`` and ``y = (v + 0.5 - cy) / fy``,
``R_c2w K^-1 [u, v, 1] = x R[:, 0] + y R[:, 1] + R[:, 2]``, whose length
``sqrt(x² + y² + 1)`` does not depend on the rotation. So every channel of every frame is
``(a x + b y + c) / sqrt(x² + y² + 1)``: three per-pixel basis images shared by all frames
with the same intrinsics, combined by a ``[channels, 3] @ [3, pixels]`` matrix product that
writes the packed output in one pass.
"""
from __future__ import annotations

import torch

from .trajectory import CameraTrajectory
from ..errors import InputError
from ..wan.latent_frames import check_frame_count, latent_frame_groups

LATENT_STRIDE = 8
SIZE_MULTIPLE = 16


def check_image_size(width: int, height: int) -> None:
    """Raise unless width and height are positive multiples of 16 (Wan's patch grid)."""
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise InputError(name, f"must be a whole number of pixels, got {v!r}.")
        if v < SIZE_MULTIPLE or v % SIZE_MULTIPLE:
            lo = max(SIZE_MULTIPLE, (v // SIZE_MULTIPLE) * SIZE_MULTIPLE)
            hint = f"{lo} or {lo + SIZE_MULTIPLE}" if v > SIZE_MULTIPLE else f"{SIZE_MULTIPLE}"
            raise InputError(name, f"{v} is not a positive multiple of {SIZE_MULTIPLE} "
                             f"(Wan's VAE and patch grid need it); use {hint}.")


def ray_coefficients(camera: CameraTrajectory) -> torch.Tensor:
    """Per-frame channel coefficients ``[F, 6, 3]`` on the basis ``(x, y, 1) / |(x, y, 1)|``.

    Channels are the moment ``o x d`` (0..2) then the direction ``d`` (3..5).
    """
    c2w = camera.c2w
    rot, origin = c2w[:, :3, :3], c2w[:, :3, 3]
    moment = torch.cross(origin[:, :, None].expand_as(rot), rot, dim=1)
    return torch.cat([moment, rot], dim=1)


def ray_basis(camera: CameraTrajectory, width: int, height: int, frame: int = 0,
              device: torch.device | str = "cpu") -> torch.Tensor:
    """The three basis images ``[3, H*W]`` (float32) of one frame's intrinsics."""
    k = camera.intrinsics(width, height)[frame]
    u = (torch.arange(width, dtype=torch.float64) + 0.5 - k[0, 2]) / k[0, 0]
    v = (torch.arange(height, dtype=torch.float64) + 0.5 - k[1, 2]) / k[1, 1]
    x, y = u.to(device).expand(height, width), v.to(device)[:, None].expand(height, width)
    inv_norm = torch.rsqrt(x * x + y * y + 1)
    return torch.stack([x * inv_norm, y * inv_norm, inv_norm]).reshape(3, -1).float()


def plucker_rays(camera: CameraTrajectory, width: int, height: int,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """Plücker ray maps ``[F, 6, H, W]`` float32: channels ``(o x d, d)``."""
    coef = ray_coefficients(camera).float().to(device)
    out = torch.empty(camera.num_frames, 6, height * width, device=device)
    if camera.has_constant_intrinsics():
        torch.matmul(coef, ray_basis(camera, width, height, 0, device), out=out)
    else:
        for f in range(camera.num_frames):
            torch.matmul(coef[f], ray_basis(camera, width, height, f, device), out=out[f])
    return out.reshape(camera.num_frames, 6, height, width)


def packed_plucker_rays(camera: CameraTrajectory, width: int, height: int,
                        device: torch.device | str = "cpu") -> torch.Tensor:
    """Plücker rays at ``width`` x ``height`` in Wan's 4-frame packing ``[1, 24, T_lat, H, W]``.

    Channel ``4 * c + k`` of latent frame ``t`` is Plücker channel ``c`` of the ``k``-th
    frame of group ``t`` (:func:`latent_frame_groups`; frame 0 repeated four times).
    This is the layout of ComfyUI's ``WAN_CAMERA_EMBEDDING``.
    """
    check_frame_count(camera.num_frames, "camera")
    groups = latent_frame_groups(camera.num_frames)  # [T, 4]
    t_lat = groups.shape[0]
    # [T, 4, 6, 3] -> [6, 4, T, 3] -> [24, T, 3]: row 4c+k holds channel c of group slot k.
    coef = ray_coefficients(camera).float()[groups].permute(2, 1, 0, 3).reshape(24, t_lat, 3)
    out = torch.empty(1, 24, t_lat, height, width, device=device)
    if camera.has_constant_intrinsics():
        basis = ray_basis(camera, width, height, 0, device)
        torch.matmul(coef.to(device), basis, out=out.view(24, t_lat, height * width))
        return out
    rays = plucker_rays(camera, width, height, device)  # [F, 6, H, W]
    out.view(6, 4, t_lat, height, width).copy_(rays[groups.to(device)].permute(2, 1, 0, 3, 4))
    return out


def latent_plucker_rays(camera: CameraTrajectory, width: int, height: int,
                        device: torch.device | str = "cpu") -> torch.Tensor:
    """The DiT's ray maps: packed rays on the latent grid ``[1, 24, T_lat, H/8, W/8]``.

    Latent cell ``(i, j)`` covers pixels ``8i..8i+7``; its ray passes through the cell
    centre, pixel coordinate ``8i + 4``, which is the pixel centre ``i + 0.5`` of an image
    ``W/8`` x ``H/8`` with the same normalised intrinsics.
    """
    check_image_size(width, height)
    return packed_plucker_rays(camera, width // LATENT_STRIDE, height // LATENT_STRIDE, device)


def wan_camera_embedding(camera: CameraTrajectory, width: int, height: int,
                         device: torch.device | str = "cpu") -> torch.Tensor:
    """ComfyUI's ``WAN_CAMERA_EMBEDDING`` of this trajectory ``[1, 24, T_lat, H, W]``.

    ComfyUI (after CameraCtrl) expresses poses relative to the first camera; it reads its
    pose rows as camera-to-world, which :meth:`CameraTrajectory.relative_to_first` matches.
    """
    check_image_size(width, height)
    return packed_plucker_rays(camera.relative_to_first(), width, height, device)
