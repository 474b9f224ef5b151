"""Preview pictures of a camera trajectory and of ray directions.

The trajectory preview shows two orthographic panels of the DESIGN.md world: from above
(x right, +Z toward the bottom, so the frontal camera sits below the subject) and from
the subject's left side (+Z to the right, +Y up). The subject is a head-sized circle with
a nose tick pointing +Z; the camera path runs blue (first frame) to red (last); frustums
are drawn on a few frames, the first in green, each with a tick on its image-top edge so
roll is visible.
"""
from __future__ import annotations

import math

import torch

try:  # kornia >= 0.9
    from kornia.image import draw_line
except ImportError:  # pragma: no cover - older kornia
    from kornia.utils import draw_line

from .trajectory import CameraTrajectory
from .plucker import plucker_rays

HEAD_RADIUS = 0.1  # metres, for the subject marker
BACKGROUND = (0.12, 0.12, 0.13)
SUBJECT_COLOUR = (0.85, 0.85, 0.85)
FIRST_FRUSTUM_COLOUR = (0.2, 0.9, 0.3)


def _frustum_segments(camera: CameraTrajectory, frame: int, depth: float) -> torch.Tensor:
    """World-space segments ``[10, 2, 3]`` of one camera's frustum and its image-top tick."""
    c2w = camera.c2w[frame]
    k = camera.intrinsics(1, 1)[frame]  # normalised image: corners at 0 and 1
    corners_px = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    x = (corners_px[:, 0] - k[0, 2]) / k[0, 0]
    y = (corners_px[:, 1] - k[1, 2]) / k[1, 1]
    cam_pts = torch.stack([x, y, torch.ones_like(x)], -1) * depth
    top_mid = (cam_pts[0] + cam_pts[1]) / 2
    tick = top_mid + torch.tensor([0.0, -0.25 * (cam_pts[2, 1] - cam_pts[1, 1]), 0.0], dtype=torch.float64)
    pts = torch.cat([cam_pts, top_mid[None], tick[None]]) @ c2w[:3, :3].T + c2w[:3, 3]
    centre = c2w[:3, 3]
    segs = [(centre, pts[i]) for i in range(4)] + [(pts[i], pts[(i + 1) % 4]) for i in range(4)]
    segs.append((pts[4], pts[5]))
    segs.append((centre, centre))
    return torch.stack([torch.stack(s) for s in segs])


def _time_colour(s: float) -> tuple[float, float, float]:
    return (0.25 + 0.75 * s, 0.35, 1.0 - 0.75 * s)


def trajectory_preview(camera: CameraTrajectory, panel_size: int = 256, max_frustums: int = 8) -> torch.Tensor:
    """Top and side views of the trajectory side by side: IMAGE ``[1, S, 2S, 3]`` in 0..1."""
    centres = camera.centers
    depth = 0.2 * float(centres.norm(dim=-1).median().clamp(min=0.1))
    step = max(1, math.ceil(camera.num_frames / max_frustums))
    shown = list(range(0, camera.num_frames, step))
    frustums = {f: _frustum_segments(camera, f, depth) for f in shown}
    ring = torch.linspace(0, 2 * math.pi, 33, dtype=torch.float64)
    circle = HEAD_RADIUS * torch.stack([torch.cos(ring), torch.sin(ring)], -1)

    # (world axis for panel x, world axis for panel y, sign for panel y)
    panels = [(0, 2, 1.0), (2, 1, -1.0)]  # top: x right, +z down; side: z right, +y up
    everything = torch.cat([centres, torch.zeros(1, 3, dtype=torch.float64)]
                           + [s.reshape(-1, 3) for s in frustums.values()])
    images = []
    for ax, ay, sy in panels:
        pts2d = torch.stack([everything[:, ax], sy * everything[:, ay]], -1)
        lo = torch.minimum(pts2d.min(0).values, torch.full((2,), -2 * HEAD_RADIUS, dtype=torch.float64))
        hi = torch.maximum(pts2d.max(0).values, torch.full((2,), 2 * HEAD_RADIUS, dtype=torch.float64))
        mid, half = (lo + hi) / 2, float((hi - lo).max()) / 2 * 1.1
        scale = (panel_size - 1) / (2 * half)

        def to_px(p3: torch.Tensor) -> torch.Tensor:
            p = torch.stack([p3[..., ax], sy * p3[..., ay]], -1)
            return ((p - mid) * scale + (panel_size - 1) / 2).round().clamp(0, panel_size - 1).float()

        img = torch.tensor(BACKGROUND).view(3, 1, 1).repeat(1, panel_size, panel_size)

        def line(a: torch.Tensor, b: torch.Tensor, colour) -> None:
            draw_line(img, to_px(a).reshape(-1, 2), to_px(b).reshape(-1, 2), torch.tensor(colour))

        head = torch.zeros(33, 3, dtype=torch.float64)
        head[:, ax], head[:, ay] = circle[:, 0], circle[:, 1]
        line(head[:-1], head[1:], SUBJECT_COLOUR)
        nose = torch.tensor([[0.0, 0.0, HEAD_RADIUS], [0.0, 0.0, 1.8 * HEAD_RADIUS]], dtype=torch.float64)
        line(nose[:1], nose[1:], SUBJECT_COLOUR)
        n = camera.num_frames
        for f, segs in frustums.items():
            colour = FIRST_FRUSTUM_COLOUR if f == 0 else _time_colour(f / max(n - 1, 1))
            line(segs[:, 0], segs[:, 1], colour)
        for f in range(n - 1):
            line(centres[f:f + 1], centres[f + 1:f + 2], _time_colour(f / max(n - 1, 1)))
        images.append(img)
    divider = torch.full((3, panel_size, 2), 0.5)
    return torch.cat([images[0], divider, images[1]], dim=-1).permute(1, 2, 0)[None].contiguous()


def ray_direction_preview(camera: CameraTrajectory, width: int, height: int, max_side: int = 512) -> torch.Tensor:
    """World-space ray directions encoded ``(d + 1) / 2`` per frame: IMAGE ``[F, h, w, 3]``,
    at the output's aspect ratio with its longer side at most ``max_side`` pixels."""
    s = min(1.0, max_side / max(width, height))
    w, h = max(1, round(width * s)), max(1, round(height * s))
    directions = plucker_rays(camera, w, h)[:, 3:6]
    return ((directions + 1) / 2).permute(0, 2, 3, 1).contiguous()
