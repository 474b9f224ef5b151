"""The portrait photo as the avatar reads it: RGB in 0..1, an optional alpha, a working size.

ComfyUI hands an IMAGE ``[B, H, W, C]``; the first image is the portrait. Grayscale
(``C = 1``) is replicated to RGB; an alpha channel (``C = 2`` or ``4``) is kept as a matte
of the person where it marks one (cut-out portraits). Photos larger than ``MAX_SIDE`` are
reduced (area filter) so that an 8000-pixel photo costs what a 2048-pixel one does: every
render samples this copy, and the renders are rarely larger.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..errors import InputError

MAX_SIDE = 2048  # pixels on the longer side of the working copy
MIN_SIDE = 64  # pixels on the shorter side: smaller photos have no face to fit


@dataclass(frozen=True)
class Photo:
    """Attributes:
        rgb: ``[H, W, 3]`` float32 in 0..1.
        alpha: ``[H, W]`` float32 in 0..1 when the input had a meaningful alpha channel, else None.
        scale: working size / input size (1 unless the photo was reduced).
        notes: what was done to the input, for the node's info.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor | None
    scale: float
    notes: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]


def prepare_photo(image: torch.Tensor, input_name: str = "image") -> Photo:
    """A ComfyUI IMAGE (``[B, H, W, C]`` or ``[H, W, C]``, C = 1..4, float 0..1) -> :class:`Photo`.

    Raises:
        InputError: naming ``input_name`` for a non-tensor, wrong rank or channels, NaNs,
            or a photo smaller than ``MIN_SIDE``.
    """
    if not isinstance(image, torch.Tensor):
        raise InputError(input_name, f"expected an IMAGE tensor, got {type(image).__name__}.")
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[-1] not in (1, 2, 3, 4) or image.shape[0] < 1:
        raise InputError(input_name, f"expected an IMAGE [batch, height, width, channels] with 1 to 4 channels, "
                                     f"got shape {tuple(image.shape)}.")
    notes = []
    if image.shape[0] > 1:
        notes.append(f"{image.shape[0]} images were given: the first is the portrait.")
    frame = image[0].detach().to("cpu", torch.float32)
    height, width, channels = frame.shape
    if min(height, width) < MIN_SIDE:
        raise InputError(input_name, f"the photo is {width}x{height}: the shorter side must be at least "
                                     f"{MIN_SIDE} pixels to find and fit a face; upscale it first.")
    if not bool(torch.isfinite(frame).all()):
        raise InputError(input_name, "the photo contains NaN or infinite values: check the node that made it.")
    frame = frame.clamp(0, 1)
    colour = frame[..., :3] if channels >= 3 else frame[..., :1].expand(-1, -1, 3)
    if channels in (1, 2):
        notes.append("grayscale photo: the avatar is grayscale too.")
    alpha = frame[..., -1] if channels in (2, 4) else None
    if alpha is not None and not bool((alpha < 0.5).any()):
        alpha = None  # fully opaque: nothing to learn from it
    elif alpha is not None:
        notes.append("the photo's alpha channel is used as the person's matte; its transparent background becomes "
                     "grey (composite the images over another one with the mask output).")

    scale = min(1.0, MAX_SIDE / max(height, width))
    if scale < 1.0:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        colour = _resize(colour, size)
        alpha = None if alpha is None else _resize(alpha[..., None], size)[..., 0]
        notes.append(f"the {width}x{height} photo was reduced to {size[1]}x{size[0]} to build the avatar.")
    return Photo(colour.contiguous(), None if alpha is None else alpha.contiguous(), scale, notes)


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[H, W, C]`` -> ``[h, w, C]`` with an area filter (no aliasing when reducing)."""
    return F.interpolate(image.permute(2, 0, 1)[None], size=size, mode="area")[0].permute(1, 2, 0)
