"""Head pose agreement: the head tracked on generated frames against the true head rotation.

Both sides are the head's rotation in its camera's frame, ``R_w2c @ R_head_world``, with
the same body model (anny), so the tracker's fit and the truth are directly comparable.
"""
from __future__ import annotations

import torch

from ..body.upper_body import UpperBodyModel, UpperBodyParams
from ..camera.trajectory import CameraTrajectory
from ..tracking.fit import fit_sequence
from ..tracking.mediapipe_detector import detect_landmarks
from .image_metrics import enlarged


def camera_space(rotations: torch.Tensor, camera: CameraTrajectory) -> torch.Tensor:
    """World rotations ``[F, 3, 3]`` seen by ``camera`` (F frames, or 1 for all)."""
    w2c = camera.w2c[:, :3, :3].to(rotations)
    return w2c @ rotations


def head_rotations(model: UpperBodyModel, params: UpperBodyParams, camera: CameraTrajectory) -> torch.Tensor:
    """The head's rotation in camera space ``[F, 3, 3]`` of a body track or ground truth."""
    with torch.no_grad():
        return camera_space(model.head_rotation(params).double(), camera)


def rotation_error_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in degrees of ``a^T b`` per frame, rotations ``[F, 3, 3]`` -> ``[F]``."""
    relative = a.double().transpose(-1, -2) @ b.double()
    cos = ((relative.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos))


def track_head_rotations(model: UpperBodyModel, frames: torch.Tensor, fov_deg: float | None,
                         upscale: int = 4) -> torch.Tensor:
    """Track the head on IMAGE frames ``[F, H, W, 3]`` (MediaPipe landmarks + the body fit of
    Track Body Mesh) -> camera-space head rotations ``[F, 3, 3]``. Small frames are enlarged
    ``upscale`` times first (:func:`image_metrics.enlarged`)."""
    keypoints = detect_landmarks(enlarged(frames, upscale), video=True)
    params, camera, _report = fit_sequence(model, keypoints, camera_fov_deg=fov_deg)
    return head_rotations(model, params, camera)
