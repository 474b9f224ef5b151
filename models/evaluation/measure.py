"""All control metrics of generated clips: measured per clip, pooled over a test set.

``measure_clip`` takes what is known about one clip (any subset: the driving codes, the
true camera-space head rotations, the ground-truth frames, the body mask) and measures what
those allow; ``summarize`` pools clips the way the figures are defined:

- ``psnr_db``, ``ssim``, ``background_psnr_db``: means over clips;
- ``head_pose_error_deg_median``: median over all frames of all clips;
- ``expression_mae`` and ``expression_pearson`` (channel -> r): over all frames pooled
  (one clip's 17 frames may hold a channel constant, the pool does not);
- ``face_found``: the fraction of clips where the tools found a face at all.

A clip where MediaPipe finds no face is a failure to follow the controls, not a gap: its
expression counts as neutral (zero codes) and its head pose error as ``NO_FACE_ERROR_DEG``,
so a model that draws no face cannot score well by being left out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..body.upper_body import UpperBodyModel
from ..errors import InputError
from .expression_metrics import expression_agreement
from .head_pose import rotation_error_deg, track_head_rotations
from .image_metrics import enlarged, psnr, ssim


NO_FACE_ERROR_DEG = 90.0


@dataclass
class ClipMeasurement:
    """What was measured on one generated clip (None: not measurable from the inputs)."""

    measured_expression: torch.Tensor | None = None  # [F, 52]
    driving_expression: torch.Tensor | None = None  # [F, 52]
    head_error_deg: torch.Tensor | None = None  # [F]
    psnr_db: float | None = None
    ssim: float | None = None
    background_psnr_db: float | None = None
    face_found: bool | None = None


def measure_clip(generated: torch.Tensor, *, driving_expression: torch.Tensor | None = None,
                 head_rotation: torch.Tensor | None = None, ground_truth: torch.Tensor | None = None,
                 body_mask: torch.Tensor | None = None, encoder=None, body_model: UpperBodyModel | None = None,
                 fov_deg: float | None = None, upscale: int = 4) -> ClipMeasurement:
    """Measure one clip of IMAGE frames ``generated [F, H, W, 3]``.

    driving_expression ``[F, 52]`` with ``encoder`` (an ARKit expression encoder with
    ``encode_images``): expression; head_rotation ``[F, 3, 3]`` (camera space) with
    ``body_model``: head pose; ground_truth ``[F, H, W, 3]``: PSNR and SSIM, and with
    body_mask ``[F, H, W]`` (1 on the body) the background PSNR.
    """
    out = ClipMeasurement()
    if ground_truth is not None:
        out.psnr_db, out.ssim = psnr(generated, ground_truth), ssim(generated, ground_truth)
        if body_mask is not None:
            out.background_psnr_db = psnr(generated, ground_truth, mask=1 - body_mask.float())
    if driving_expression is not None and encoder is not None:
        frames = enlarged(generated, upscale)
        try:
            codes, _report = encoder.encode_images(frames, fov_degrees=fov_deg, video=frames.shape[0] > 1)
            measured, out.face_found = codes.codes.float(), True
        except InputError:  # no face in any frame
            measured, out.face_found = torch.zeros_like(driving_expression, dtype=torch.float32), False
        out.measured_expression, out.driving_expression = measured, driving_expression.float()
    if head_rotation is not None and body_model is not None:
        try:
            tracked = track_head_rotations(body_model, generated, fov_deg, upscale)
            out.head_error_deg = rotation_error_deg(tracked, head_rotation)
            out.face_found = out.face_found is not False
        except InputError:
            out.head_error_deg = torch.full((generated.shape[0],), NO_FACE_ERROR_DEG, dtype=torch.float64)
            out.face_found = False
    return out


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return sum(kept) / len(kept) if kept else None


def summarize(clips: list[ClipMeasurement]) -> dict:
    """Pooled figures of a test set (keys in the module docstring; None: not measured)."""
    errors = [c.head_error_deg for c in clips if c.head_error_deg is not None]
    pairs = [(c.measured_expression, c.driving_expression) for c in clips if c.measured_expression is not None]
    expression = expression_agreement(torch.cat([m for m, _ in pairs]), torch.cat([d for _, d in pairs])) \
        if pairs else {"mae": None, "pearson": None}
    return {
        "head_pose_error_deg_median": float(torch.cat(errors).median()) if errors else None,
        "expression_mae": expression["mae"],
        # NaN (a constant series, e.g. no face found anywhere) -> None: JSON has no NaN
        "expression_pearson": None if expression["pearson"] is None else {
            c: (r if math.isfinite(r) else None) for c, r in expression["pearson"].items()},
        "psnr_db": _mean([c.psnr_db for c in clips]),
        "ssim": _mean([c.ssim for c in clips]),
        "background_psnr_db": _mean([c.background_psnr_db for c in clips]),
        "face_found": _mean([float(c.face_found) for c in clips if c.face_found is not None]),
    }
