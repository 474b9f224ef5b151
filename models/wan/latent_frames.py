"""Wan's temporal packing of video frames into latent frames, written once.

The Wan 2.1 VAE compresses time by 4 with the first frame alone: frames
``[0], [1..4], [5..8], ...`` become latent frames ``0, 1, 2, ...``. A video of ``F`` frames
therefore needs ``F = 4k + 1`` and has ``T_lat = (F - 1) // 4 + 1`` latent frames.
Per-frame controls (camera rays, expression codes) are grouped the same way, with frame 0
repeated four times so that every latent frame owns exactly four frames.
"""
from __future__ import annotations

import torch

from ..errors import InputError

TEMPORAL_STRIDE = 4


def latent_frame_count(num_frames: int) -> int:
    """Number of latent frames Wan's VAE makes of ``num_frames`` (which must be 4k+1)."""
    check_frame_count(num_frames, "frames")
    return (num_frames - 1) // TEMPORAL_STRIDE + 1


def video_frame_count(num_latent_frames: int) -> int:
    """Number of video frames that ``num_latent_frames`` latent frames decode to (4T - 3)."""
    if num_latent_frames < 1:
        raise ValueError(f"need at least one latent frame, got {num_latent_frames}")
    return TEMPORAL_STRIDE * (num_latent_frames - 1) + 1


def nearest_valid_frame_counts(num_frames: int) -> tuple[int, int]:
    """The valid counts (4k+1) just below and just above ``num_frames``."""
    below = max(1, ((num_frames - 1) // TEMPORAL_STRIDE) * TEMPORAL_STRIDE + 1)
    above = below if below >= num_frames else below + TEMPORAL_STRIDE
    return below, above


def check_frame_count(num_frames: int, input_name: str) -> None:
    """Raise an :class:`InputError` naming ``input_name`` unless ``num_frames`` is 4k+1."""
    if num_frames < 1 or (num_frames - 1) % TEMPORAL_STRIDE != 0:
        below, above = nearest_valid_frame_counts(max(num_frames, 1))
        nearest = f"{below} or {above}" if below != above else f"{below}"
        raise InputError(
            input_name,
            f"{num_frames} frames cannot be packed into Wan latent frames; the count must "
            f"be 4k+1 (1, 5, 9, ..., 77, 81, 85, ...). Nearest valid count: {nearest}.",
        )


def latent_frame_groups(num_frames: int) -> torch.Tensor:
    """Frame indices per latent frame, frame 0 repeated: ``[T_lat, 4]`` (long).

    >>> latent_frame_groups(9).tolist()
    [[0, 0, 0, 0], [1, 2, 3, 4], [5, 6, 7, 8]]
    """
    t_lat = latent_frame_count(num_frames)
    rest = torch.arange(1, num_frames).reshape(t_lat - 1, TEMPORAL_STRIDE)
    return torch.cat([torch.zeros(1, TEMPORAL_STRIDE, dtype=torch.long), rest], dim=0)
