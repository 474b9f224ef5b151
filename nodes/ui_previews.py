"""Previews shown in the node after a run (ComfyUI ``ui`` outputs): animated WebPs in the
temp folder, so nothing has to be saved to look, and expression curves as data for the
pack's frontend (js/factorportrait_expression.js). Never part of a node's outputs."""
from __future__ import annotations

import logging
import random
import string

import torch
import torch.nn.functional as F
from comfy_api.latest import io, ui

from ..models.expression.codes import ExpressionCodes
from ..models.wan.latent_format import latent_rgb

PREVIEW_FPS = 15.0  # the paper's frame rate
PREVIEW_MAX_SIDE = 384  # pixels: small files, fast to write
PREVIEW_FRAMES = 121  # a longer clip's preview shows every n-th frame
CURVES_KEY = "factorportrait_curves"  # read by js/factorportrait_expression.js
CAMERA_KEY = "factorportrait_camera"  # read by js/factorportrait_camera.js


def _shrunk(images: torch.Tensor) -> torch.Tensor:
    """IMAGE ``[F, H, W, C]`` with its longer side at most PREVIEW_MAX_SIDE (RGB)."""
    images = images[..., :3].float().cpu()
    scale = PREVIEW_MAX_SIDE / max(images.shape[1:3])
    if scale >= 1:
        return images
    size = (max(1, round(images.shape[1] * scale)), max(1, round(images.shape[2] * scale)))
    return F.interpolate(images.movedim(-1, 1), size=size, mode="area").movedim(1, -1)


def animated_preview(images: torch.Tensor, fps: float = PREVIEW_FPS) -> ui.SavedImages | None:
    """An animated WebP of the frames in the temp folder, shown on the node; None if it fails
    (a preview must never fail the run)."""
    try:
        prefix = "factorportrait_preview_" + "".join(random.choices(string.ascii_lowercase, k=6))
        saved = ui.ImageSaveHelper.save_animated_webp(
            _shrunk(images), prefix, io.FolderType.temp, None,
            fps=fps, lossless=False, quality=80, method=0)
        return ui.SavedImages([saved], is_animated=images.shape[0] > 1)
    except Exception as e:  # noqa: BLE001 - previews are best effort
        logging.warning("FactorPortrait: no preview (%s)", e)
        return None


def clip_preview(images: torch.Tensor, max_frames: int = PREVIEW_FRAMES) -> ui.SavedImages | None:
    """:func:`animated_preview` of every frame of a short clip, of every n-th of a long one
    (at most ``max_frames``, at the speed the clip plays)."""
    step = -(-images.shape[0] // max_frames)
    return animated_preview(images[::step], fps=PREVIEW_FPS / step)


def latent_video_preview(samples: torch.Tensor) -> ui.SavedImages | None:
    """The sampled Wan latents ``[1, 16, T, h, w]`` as colours (ComfyUI's linear latent-to-RGB
    map of Wan 2.1, the one of its live previews), one picture per latent frame, upscaled."""
    try:
        from comfy.latent_formats import Wan21

        fmt = Wan21()
        rgb = latent_rgb(samples, torch.tensor(fmt.latent_rgb_factors),
                         torch.tensor(fmt.latent_rgb_factors_bias or [0.0, 0.0, 0.0]))
        scale = max(1, PREVIEW_MAX_SIDE // max(rgb.shape[1:3]))
        rgb = F.interpolate(rgb.movedim(-1, 1), scale_factor=scale, mode="bilinear").movedim(1, -1)
        return animated_preview(rgb.clamp(0, 1), fps=PREVIEW_FPS / 4)  # one latent frame = 4 frames
    except Exception as e:  # noqa: BLE001
        logging.warning("FactorPortrait: no latent preview (%s)", e)
        return None


def expression_curves(codes: ExpressionCodes) -> dict:
    """``ui`` data of expression codes: per-channel curves for the frontend's plot."""
    values = codes.codes.float().cpu()
    return {CURVES_KEY: [{
        "encoder": codes.encoder,
        "labels": list(codes.labels) if codes.labels else [f"code {i}" for i in range(values.shape[1])],
        "range": list(codes.value_range) if codes.value_range else [float(values.min()), float(values.max())],
        "curves": [[round(float(v), 4) for v in values[:, c]] for c in range(values.shape[1])],
    }]}


def with_images(preview: ui.SavedImages | None, extra: dict | None = None) -> dict | None:
    """One ``ui`` dict of an image preview and extra data (None when both are empty)."""
    out = dict(preview.as_dict()) if preview is not None else {}
    out.update(extra or {})
    return out or None
