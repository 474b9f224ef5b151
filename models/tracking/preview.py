"""The tracking overlay: the fitted mesh and landmarks drawn over the driving frames.

Each frame shows the video with the fitted body's normal map blended over it, the detected
landmarks in green and the fitted model's landmarks in red (a good fit puts them on top of
each other), and a red border on frames that had no detection and were filled in.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..body.upper_body import LANDMARK_INDEX
from ..render.normal_maps import render_normal_maps
from .body_track import FittedSequence
from .keypoints import Keypoints2D

MAX_SIDE = 768  # previews are drawn at most this large (longer side)
MESH_OPACITY = 0.6
OBSERVED, FITTED, FILLED = (0.1, 1.0, 0.2), (1.0, 0.15, 0.1), (1.0, 0.0, 0.0)


def draw_points(images: torch.Tensor, points: torch.Tensor, visible: torch.Tensor, color: tuple[float, float, float],
                radius: int = 1) -> None:
    """Draw filled squares of side ``2 radius + 1`` in place.

    Args:
        images: ``[F, H, W, 3]``.
        points: pixel positions ``[F, K, 2]`` (continuous, pixel centres at +0.5).
        visible: ``[F, K]`` bool; only these are drawn.
    """
    f, h, w, _ = images.shape
    frame, k = torch.nonzero(visible, as_tuple=True)
    if frame.numel() == 0:
        return
    centre = points[frame, k].floor().long()  # [N, 2] pixel holding the point
    offsets = torch.arange(-radius, radius + 1)
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    x = (centre[:, 0, None] + dx.reshape(1, -1)).clamp(0, w - 1)
    y = (centre[:, 1, None] + dy.reshape(1, -1)).clamp(0, h - 1)
    images[frame[:, None].expand_as(x), y, x] = images.new_tensor(color)


def _fitted_landmarks(fit: FittedSequence, model, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels ``[F, K, 2]`` of the fitted model's landmarks in LANDMARKS order, and which exist ``[F, K]``."""
    with torch.no_grad():
        world = model.posed_landmarks(fit.params).double()  # [F, K', 3], model's landmark order
    cam = world @ fit.camera.w2c[:, :3, :3].transpose(-1, -2) + fit.camera.w2c[:, None, :3, 3]
    uvw = cam @ fit.camera.intrinsics(width, height).transpose(-1, -2)
    pixels = uvw[..., :2] / uvw[..., 2:3]
    k = len(fit.keypoints.names)
    out = torch.zeros(world.shape[0], k, 2, dtype=torch.float32)
    exists = torch.zeros(world.shape[0], k, dtype=torch.bool)
    sel = [LANDMARK_INDEX[n] for n in model.landmark_names]
    out[:, sel], exists[:, sel] = pixels.float(), True
    return out, exists


def tracking_overlay(images: torch.Tensor, fit: FittedSequence, model) -> torch.Tensor:
    """The overlay ``[F, h, w, 3]`` (longer side at most ``MAX_SIDE``) of a fit on its frames.

    Args:
        images: the frames that were tracked ``[F, H, W, C]`` in 0..1 (C = 1, 3 or 4).
        fit: their fit (``FittedSequence``); model: its body model.
    """
    images = images[..., :3].float() if images.shape[-1] >= 3 else images[..., :1].float().expand(-1, -1, -1, 3)
    h, w = images.shape[1:3]
    scale = min(1.0, MAX_SIDE / max(h, w))
    ph, pw = max(1, round(h * scale)), max(1, round(w * scale))
    frames = images.cpu()
    if (ph, pw) != (h, w):
        frames = F.interpolate(frames.permute(0, 3, 1, 2), size=(ph, pw), mode="area").permute(0, 2, 3, 1)
    with torch.no_grad():
        vertices = model(fit.params)
    normals, mask = render_normal_maps(vertices, model.faces, fit.camera, pw, ph)
    alpha = MESH_OPACITY * mask[..., None]
    out = (frames * (1 - alpha) + normals * alpha).contiguous()

    kp: Keypoints2D = fit.keypoints
    to_preview = torch.tensor([pw / kp.width, ph / kp.height])
    draw_points(out, kp.points * to_preview, kp.confidence > 0, OBSERVED)
    fitted, exists = _fitted_landmarks(fit, model, pw, ph)
    draw_points(out, fitted, exists, FITTED)
    for f in fit.report.filled_frames:
        border = max(2, ph // 100)
        out[f, :border], out[f, -border:] = out.new_tensor(FILLED), out.new_tensor(FILLED)
        out[f, :, :border], out[f, :, -border:] = out.new_tensor(FILLED), out.new_tensor(FILLED)
    return out.clamp_(0, 1)
