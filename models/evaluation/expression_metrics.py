"""Expression agreement: codes measured on generated frames against the driving codes."""
from __future__ import annotations

import math

import torch

from ..body.anny_model import ARKIT_FACE_ACTIONS

# The face actions the paper's comparison looks at: mouth opening, smiles, blinks, brows.
EVALUATED_CHANNELS = ("jawOpen", "mouthSmileLeft", "mouthSmileRight", "eyeBlinkLeft", "eyeBlinkRight",
                      "browInnerUp")


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two series ``[N]``; NaN when either is constant."""
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    denominator = float(a.norm() * b.norm())
    return float((a * b).sum()) / denominator if denominator > 1e-12 else math.nan


def expression_agreement(measured: torch.Tensor, driving: torch.Tensor,
                         channels: tuple[str, ...] = EVALUATED_CHANNELS) -> dict:
    """ARKit-52 codes ``measured [N, 52]`` against ``driving [N, 52]`` (frames of one or many
    clips, pooled) -> ``{"mae": mean absolute error over the channels, "pearson": {name: r}}``."""
    if measured.shape != driving.shape or measured.shape[-1] != len(ARKIT_FACE_ACTIONS):
        raise ValueError(f"expected two [N, {len(ARKIT_FACE_ACTIONS)}] code tensors, got "
                         f"{list(measured.shape)} and {list(driving.shape)}")
    index = [ARKIT_FACE_ACTIONS.index(c) for c in channels]
    m, d = measured[:, index].float(), driving[:, index].float()
    return {"mae": float((m - d).abs().mean()),
            "pearson": {c: pearson(m[:, i], d[:, i]) for i, c in enumerate(channels)}}
