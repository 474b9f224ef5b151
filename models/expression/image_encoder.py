"""The expression image encoder: an aligned face crop -> one expression code.

A compact pre-activation ResNet. Shapes for the default config (S = 128, width w = 32,
depth 4):

    crop   [F, 3, 128, 128]   0..1 RGB from ``face_align``; normalised to -1..1 here
    stem   [F, w, 64, 64]     3x3 conv, stride 2
    stage0 [F, w, 32, 32]     residual block, stride 2
    stage1 [F, 2w, 16, 16]
    stage2 [F, 4w, 8, 8]
    stage3 [F, 8w, 4, 4]
    pool   [F, 8w]            norm, SiLU, global average
    head   [F, code_dim]      linear

GroupNorm rather than BatchNorm: a frame's code never depends on the other frames in its
batch, in training or inference, and the encoder works at batch size 1.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class ImageEncoderConfig:
    """Attributes:
        code_dim: length D of the expression code.
        width: channels of the first stage; each later stage doubles them.
        depth: number of residual stages (each halves the resolution).
        crop_size: side S of the aligned face crop the encoder reads.
    """

    code_dim: int = 128
    width: int = 32
    depth: int = 4
    crop_size: int = 128

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{f.name} must be a positive integer, got {value!r}")
        if self.crop_size < 2 ** (self.depth + 1):
            raise ValueError(f"crop_size {self.crop_size} is too small for depth {self.depth} "
                             f"(at least {2 ** (self.depth + 1)})")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ImageEncoderConfig:
        """The config of a dict; unknown or missing keys are a ValueError."""
        names = {f.name for f in fields(cls)}
        if not isinstance(d, dict) or set(d) != names:
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"expected the keys {sorted(names)}, got {got}")
        return cls(**d)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(channels, 8), channels)


class ResidualBlock(nn.Module):
    """Pre-activation residual block: ``[F, c_in, H, W] -> [F, c_out, H/stride, W/stride]``."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.norm1 = _norm(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm2 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.skip = (nn.Identity() if c_in == c_out and stride == 1
                     else nn.Conv2d(c_in, c_out, 1, stride, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class ExpressionImageEncoder(nn.Module):
    """Aligned face crops ``[F, 3, S, S]`` (0..1) -> expression codes ``[F, code_dim]``.

    ``name`` identifies the trained weights (it travels with the codes as
    ``ExpressionCodes.encoder``); the loader sets it from the file.
    """

    def __init__(self, config: ImageEncoderConfig = ImageEncoderConfig(), name: str = ""):
        super().__init__()
        self.config = config
        self.name = name
        w = config.width
        self.stem = nn.Conv2d(3, w, 3, 2, 1)
        chans = [w * 2 ** i for i in range(config.depth)]
        self.stages = nn.ModuleList(
            ResidualBlock(c_in, c_out, 2) for c_in, c_out in zip([w] + chans[:-1], chans))
        self.norm = _norm(chans[-1])
        self.head = nn.Linear(chans[-1], config.code_dim)

    @property
    def code_dim(self) -> int:
        return self.config.code_dim

    def forward(self, crops: Tensor) -> Tensor:
        s = self.config.crop_size
        if crops.ndim != 4 or tuple(crops.shape[1:]) != (3, s, s):
            raise ValueError(f"expected crops [frames, 3, {s}, {s}], got {tuple(crops.shape)}")
        p = self.head.weight
        x = crops.to(device=p.device, dtype=p.dtype) * 2 - 1  # 0..1 -> -1..1
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        x = F.silu(self.norm(x)).mean((2, 3))
        return self.head(x)


__all__ = ["ExpressionImageEncoder", "ImageEncoderConfig", "ResidualBlock"]
