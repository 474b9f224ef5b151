"""Image agreement of generated frames with ground truth: PSNR (masked or not), SSIM (kornia).

Frames are ComfyUI IMAGE tensors ``[F, H, W, 3]`` in 0..1.
"""
from __future__ import annotations

import kornia
import torch

from ..errors import InputError


def _check(generated: torch.Tensor, target: torch.Tensor) -> None:
    if generated.ndim != 4 or generated.shape != target.shape:
        raise InputError("ground_truth", f"must have the generated frames' shape {list(generated.shape)}, "
                                         f"got {list(target.shape)}")


def psnr(generated: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """PSNR in dB over all frames (one MSE), or over the pixels where ``mask [F, H, W]`` is 1.
    Equal frames give 100 dB (MSE floored at 1e-10) rather than infinity."""
    _check(generated, target)
    a, b = generated.float().clamp(0, 1), target.float().clamp(0, 1)
    if mask is None:
        mask = torch.ones(a.shape[:3])
    weight = mask.float()[..., None].expand_as(a)
    if float(weight.sum()) == 0:
        return float("nan")
    mse = ((a - b).square() * weight).sum() / weight.sum()
    return float(10 * torch.log10(1.0 / mse.clamp_min(1e-10)))


def ssim(generated: torch.Tensor, target: torch.Tensor, window: int = 11) -> float:
    """Mean SSIM over frames and pixels (kornia, Gaussian window ``window``)."""
    _check(generated, target)
    a = generated.float().clamp(0, 1).movedim(-1, 1)
    b = target.float().clamp(0, 1).movedim(-1, 1)
    return float(kornia.metrics.ssim(a, b, window).mean())


def enlarged(frames: torch.Tensor, factor: int) -> torch.Tensor:
    """IMAGE frames ``[F, H, W, 3]`` enlarged ``factor`` times (bicubic, clamped to 0..1):
    MediaPipe's face mesh wants faces of 100+ pixels, a 128x128 video has 30-pixel faces."""
    if factor <= 1:
        return frames
    out = torch.nn.functional.interpolate(frames.movedim(-1, 1), scale_factor=factor, mode="bicubic",
                                          align_corners=False)
    return out.clamp(0, 1).movedim(1, -1)
