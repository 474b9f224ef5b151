"""Per-frame expression codes: the value of the ``FACTORPORTRAIT_EXPRESSION`` type.

One code per driving-video frame, ``[F, D]``, with the name of the encoder that made it.
The model checkpoint records the ``D`` it expects; a mismatch is an error naming both.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError


@dataclass(frozen=True)
class ExpressionCodes:
    """Attributes:
        codes: ``[F, D]`` float32, one code per video frame.
        encoder: name of the encoder that produced the codes (e.g. ``"anny-arkit52"``).
        labels: names of the ``D`` channels when they have meanings (the ARKit face actions
            of ``"anny-arkit52"``), else None (a learned code).
        value_range: ``(low, high)`` of every channel when bounded (ARKit weights: 0..1).
    """

    codes: torch.Tensor
    encoder: str
    labels: tuple[str, ...] | None = None
    value_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.codes.ndim != 2 or self.codes.shape[0] < 1 or self.codes.shape[1] < 1:
            raise InputError("expression", f"codes must be [frames, dim], got {tuple(self.codes.shape)}.")
        if not torch.isfinite(self.codes).all():
            raise InputError("expression", "codes contain NaN or infinite values.")
        if self.labels is not None and len(self.labels) != self.codes.shape[1]:
            raise InputError("expression", f"{len(self.labels)} labels for {self.codes.shape[1]} code channels.")

    @property
    def num_frames(self) -> int:
        return self.codes.shape[0]

    @property
    def dim(self) -> int:
        return self.codes.shape[1]

    def check_dim(self, expected: int, model_name: str = "the model") -> None:
        """Raise unless the code dimension is what ``model_name`` was trained with."""
        if self.dim != expected:
            raise InputError("expression", f"codes from encoder '{self.encoder}' have D={self.dim}, "
                             f"but {model_name} expects D={expected}; extract the expression "
                             "with the encoder the model was trained with.")

    def resampled(self, num_frames: int) -> ExpressionCodes:
        """The codes linearly resampled in time to ``num_frames`` frames (first and last
        frames kept), e.g. to fit a driving video of another length to the output video."""
        if num_frames == self.num_frames:
            return self
        src = self.codes.float().T[None]  # [1, D, F]
        out = torch.nn.functional.interpolate(src, size=num_frames, mode="linear", align_corners=True)
        if self.num_frames == 1:
            out = src.expand(-1, -1, num_frames)
        return self.with_codes(out[0].T.contiguous())

    def with_codes(self, codes: torch.Tensor) -> ExpressionCodes:
        """New codes ``[F', D]`` from the same encoder (same labels and range)."""
        return ExpressionCodes(codes, self.encoder, self.labels, self.value_range)
