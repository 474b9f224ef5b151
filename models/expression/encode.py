"""Driving frames -> ``ExpressionCodes`` with the learned image encoder."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .codes import ExpressionCodes
from ..tracking.keypoints import Keypoints2D
from .face_align import alignment_matrices, check_frames, warp_faces
from .image_encoder import ExpressionImageEncoder


def encode_frames(encoder: ExpressionImageEncoder, images: Tensor, keypoints: Keypoints2D,
                  batch_size: int = 32, progress: Callable[[int, int], None] | None = None,
                  name: str | None = None) -> ExpressionCodes:
    """One expression code per frame of a driving video.

    Args:
        encoder: the image encoder (eval mode; its device and dtype are used).
        images: ComfyUI IMAGE ``[F, H, W, C]``, C = 1, 3 or 4, values 0..1, any device.
        keypoints: the frames' landmarks (``Keypoints2D``, same F).
        batch_size: frames aligned and encoded at once (bounds the memory of the crops
            and of full frames moved to the encoder's device).
        progress: called as ``progress(done, total)`` after each batch; it may raise to
            cancel.
        name: the codes' encoder name (default: ``encoder.name``).

    Returns:
        ``ExpressionCodes`` with codes ``[F, code_dim]`` float32 on the CPU. Frames without
        a visible face take the alignment of their nearest frame with one.
    """
    check_frames(images, keypoints)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    size = encoder.config.crop_size
    matrices, _filled = alignment_matrices(keypoints, size, tuple(images.shape[1:3]))
    device = encoder.head.weight.device
    total = images.shape[0]
    codes = []
    with torch.no_grad():
        for start in range(0, total, batch_size):
            stop = min(start + batch_size, total)
            crops = warp_faces(images[start:stop].to(device), matrices[start:stop], size)
            codes.append(encoder(crops).float().cpu())
            if progress is not None:
                progress(stop, total)
    return ExpressionCodes(torch.cat(codes), name or encoder.name or "unnamed-image-encoder")


__all__ = ["encode_frames"]
