"""A synthetic driving video for the body-tracking workflow: the anny upper body with a known
head turn and jaw opening, rendered as normal maps, shaded like a lit face and saved as an
mp4 (H.264) in ComfyUI's input folder, with the anny cache linked into its model folder.
"""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import torch

DRIVING_NAME = "driving.mp4"
FRAMES, SIZE, FPS, FOV, DISTANCE = 9, 256, 15, 30.0, 0.9
YAW_DEG = 20.0


def driving_truth(model):
    """Known motion over ``FRAMES``: head yaw 0 -> +20° -> 0 (neck and head), jaw 0 -> 0.7 -> 0."""
    t = torch.linspace(0, 1, FRAMES)
    wave = torch.sin(math.pi * t)
    p = model.neutral_params(FRAMES)
    with torch.no_grad():
        p.neck[:, 1] = 0.3 * math.radians(YAW_DEG) * wave
        p.head[:, 1] = 0.7 * math.radians(YAW_DEG) * wave
        p.face[:, model.face_labels.index("jawOpen")] = 0.7 * wave
    return p


def driving_camera():
    from factorportrait.models.camera import paths as tr

    return tr.static(1, tr.View(distance=DISTANCE, fov=FOV))


def driving_frames(model) -> torch.Tensor:
    """The shaded frames ``[FRAMES, SIZE, SIZE, 3]`` in 0..1."""
    from factorportrait.models.render.normal_maps import render_normal_maps
    from factorportrait.models.render.shading import shade_normal_maps

    with torch.no_grad():
        vertices = model(driving_truth(model))
    normals, mask = render_normal_maps(vertices, model.faces, driving_camera(), SIZE, SIZE)
    return shade_normal_maps(normals, mask)


def write_mp4(frames: torch.Tensor, path: Path, fps: int = FPS) -> None:
    """Frames ``[F, H, W, 3]`` in 0..1 (even H and W) as an H.264 mp4, nearly lossless (crf 12)."""
    from factorportrait.training.demo.make_inputs import write_mp4 as write_uint8_mp4

    write_uint8_mp4((frames.clamp(0, 1) * 255).round().to(torch.uint8), path, fps)


def link_anny_cache(cache_dir: str | os.PathLike, models_dir: Path) -> None:
    """Put the built anny cache file(s) into ``models_dir/anny`` (hard links, else copies), so
    the server does not rebuild it."""
    target = models_dir / "anny"
    target.mkdir(parents=True, exist_ok=True)
    for src in Path(cache_dir).glob("anny_upper_body_*.safetensors"):
        dst = target / src.name
        if not dst.exists():
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)


def write_driving_video(anny_model, anny_cache_dir: str, base_dir: Path) -> Path:
    """Write ``input/driving.mp4`` and link the anny cache under ``base_dir``; returns the video path."""
    link_anny_cache(anny_cache_dir, base_dir / "models")
    path = base_dir / "input" / DRIVING_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(driving_frames(anny_model), path)
    return path
