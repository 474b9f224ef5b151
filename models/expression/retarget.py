"""Shaping expression codes: neutral offset, intensity, per-region mixing, smoothing, clamping.

Every operation is on ``ExpressionCodes`` (``[F, D]``) and keeps its encoder, labels and
range. The order of ``retarget_expression`` is the one a user reasons in:

    c' = neutral_ref + scale * (c - neutral_drv)     the actor's resting face does not leak
    c' = mix(c', other, regions)                     e.g. the mouth from another take
    c' = smooth(c'); c' = clamp(c', range)
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..body.anny_model import FACE_ACTION_REGIONS
from ..errors import InputError
from .codes import ExpressionCodes
from .smoothing import one_euro, savitzky_golay

NEUTRAL_MODES = ("none", "first frame", "lowest 5%")
SMOOTHING = ("none", "savitzky-golay", "one-euro")
REGIONS = tuple(FACE_ACTION_REGIONS)
LOW_QUANTILE = 0.05


def driving_neutral(expression: ExpressionCodes, mode: str) -> torch.Tensor:
    """The driving actor's resting code ``[D]``.

    ``"first frame"``: the actor starts neutral (the usual recording protocol). ``"lowest
    5%"``: per channel, the 5th percentile over the video: for face-action weights, the
    resting level of each action even if the actor never sits fully still. ``"none"``: zero.
    """
    codes = expression.codes
    if mode == "none":
        return torch.zeros_like(codes[0])
    if mode == "first frame":
        return codes[0]
    if mode == "lowest 5%":
        return torch.quantile(codes.double(), LOW_QUANTILE, dim=0).to(codes.dtype)
    raise InputError("neutral", f"unknown neutral {mode!r}; choose one of {', '.join(NEUTRAL_MODES)}.")


def _check_same_encoder(a: ExpressionCodes, b: ExpressionCodes, input_name: str) -> None:
    if a.encoder != b.encoder or a.dim != b.dim:
        raise InputError(input_name, f"comes from encoder '{b.encoder}' (D={b.dim}) but the driving codes from "
                                     f"'{a.encoder}' (D={a.dim}); extract both with the same encoder.")


def region_channels(expression: ExpressionCodes, regions: Sequence[str], input_name: str = "regions") -> list[int]:
    """Channel indices of the named face regions (codes with ARKit labels only)."""
    if expression.labels is None:
        raise InputError(input_name, f"codes from encoder '{expression.encoder}' have no named channels, so they "
                                     "cannot be mixed by face region; use the anny-arkit52 encoder.")
    unknown = [r for r in regions if r not in FACE_ACTION_REGIONS]
    if unknown:
        raise InputError(input_name, f"unknown region(s) {', '.join(map(repr, unknown))}; choose from "
                                     f"{', '.join(REGIONS)}.")
    names = {a for r in regions for a in FACE_ACTION_REGIONS[r]}
    return [i for i, label in enumerate(expression.labels) if label in names]


def parse_regions(text: str) -> list[str]:
    """``"mouth, jaw"`` -> ``["mouth", "jaw"]`` (commas or spaces; empty -> [])."""
    return [r for r in text.replace(",", " ").split() if r]


def mix_regions(base: ExpressionCodes, other: ExpressionCodes, regions: Sequence[str]) -> ExpressionCodes:
    """``base`` with the channels of ``regions`` taken from ``other`` (resampled to ``base``'s
    length when the two differ)."""
    _check_same_encoder(base, other, "other")
    idx = region_channels(base, regions)
    other = other.resampled(base.num_frames)
    codes = base.codes.clone()
    codes[:, idx] = other.codes[:, idx].to(codes.dtype)
    return base.with_codes(codes)


def smooth(expression: ExpressionCodes, method: str, window: int, fps: float) -> ExpressionCodes:
    """Temporal smoothing. ``window`` (frames) sets the strength of both filters: the
    Savitzky-Golay window (odd; quadratic fit), or a one-euro filter with a still-cutoff of
    ``fps / window`` Hz."""
    if method == "none" or expression.num_frames < 3:
        return expression
    if window < 1:
        raise InputError("window", f"must be at least 1 frame, got {window}.")
    if method == "savitzky-golay":
        return expression.with_codes(savitzky_golay(expression.codes, window | 1, order=2))
    if method == "one-euro":
        return expression.with_codes(one_euro(expression.codes, fps, min_cutoff=fps / window))
    raise InputError("smoothing", f"unknown smoothing {method!r}; choose one of {', '.join(SMOOTHING)}.")


def retarget_expression(driving: ExpressionCodes, *, scale: float = 1.0, neutral: str = "none",
                        reference: ExpressionCodes | None = None, other: ExpressionCodes | None = None,
                        regions_from_other: Sequence[str] = (), smoothing: str = "none", window: int = 5,
                        fps: float = 15.0, clamp: bool = True) -> ExpressionCodes:
    """The driving codes shaped for the reference (see the module docstring).

    Args:
        driving: ``[F, D]`` codes of the driving video.
        scale: intensity of the expression around the neutral (0: neutral, 1: as driven).
        neutral: how to find the driving actor's resting code (``NEUTRAL_MODES``).
        reference: codes of the reference image (its first frame is its resting code), or
            None for the encoder's zero.
        other: a second sequence to take ``regions_from_other`` from.
        smoothing, window, fps: temporal filter (``smooth``).
        clamp: keep bounded codes (ARKit weights) in their range.
    """
    if not torch.isfinite(torch.tensor(scale)):
        raise InputError("scale", f"must be a finite number, got {scale}.")
    codes = driving.codes.float()
    base = torch.zeros_like(codes[0])
    if reference is not None:
        _check_same_encoder(driving, reference, "reference_expression")
        base = reference.codes[0].float()
    codes = base + scale * (codes - driving_neutral(driving, neutral).float())
    out = driving.with_codes(codes)
    if regions_from_other:
        if other is None:
            raise InputError("other", f"regions {', '.join(regions_from_other)} are to come from a second "
                                      "sequence: connect 'other', or clear the regions.")
        out = mix_regions(out, other, regions_from_other)
    out = smooth(out, smoothing, window, fps)
    if clamp and out.value_range is not None:
        out = out.with_codes(out.codes.clamp(*out.value_range))
    return out
