"""The OpenPose skeleton of a posed body mesh: 3-D points, projected into a camera with
what the camera sees of them.

Body (OpenPose COCO-18 order): the body model's landmarks that have an OpenPose index
(nose tip, eye centres, ears, shoulders; ``upper_body.LANDMARKS``) and the neck as the
shoulders' midpoint, as DWPose makes it from COCO-WholeBody. The upper body has no elbows,
wrists or hips: those are absent and never drawn. Face: the 68 iBUG points
(``face68.py``; anny only).

Visibility, as a detector would see the frame: a point must be in front of the camera and
inside the image; a point on the surface (nose, eyes, ears, face points) is hidden when the
rendered surface at its pixel is more than ``OCCLUSION_TOLERANCE`` nearer (the far ear and
cheek of a turned head). Shoulders and neck lie inside the body and are drawn whenever they
are in the image, as detectors infer them through clothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..body.upper_body import LANDMARKS
from ..camera.trajectory import CameraTrajectory
from ..render import rasterize as rz
from .face68 import SurfacePoints

NUM_BODY_POINTS = 18
NECK, RIGHT_SHOULDER, LEFT_SHOULDER = 1, 2, 5
OCCLUSION_TOLERANCE = 0.03  # metres: a surface point this far behind the nearest surface is hidden
# Landmark index -> OpenPose index, for the landmarks that have one.
_OPENPOSE = {i: lm.openpose18 for i, lm in enumerate(LANDMARKS) if lm.openpose18 is not None}
INTERIOR = (NECK, RIGHT_SHOULDER, LEFT_SHOULDER)


@dataclass(frozen=True)
class Skeleton3D:
    """OpenPose points of ``F`` frames in world space.

    Attributes:
        body: ``[F, 18, 3]`` (0 where absent).
        present: ``[18]`` bool: the body model has the point.
        face: ``[F, 68, 3]`` iBUG points, or None (no face points for this body model).
    """

    body: Tensor
    present: Tensor
    face: Tensor | None


@dataclass(frozen=True)
class Skeleton2D:
    """OpenPose points of ``F`` frames in pixels (continuous, pixel centres at +0.5).

    Attributes:
        body: ``[F, 18, 2]``; body_visible: ``[F, 18]`` bool.
        face: ``[F, 68, 2]`` or None; face_visible: ``[F, 68]`` bool or None.
    """

    body: Tensor
    body_visible: Tensor
    face: Tensor | None = None
    face_visible: Tensor | None = None


def skeleton_3d(landmarks: Tensor, vertices: Tensor, face68: SurfacePoints | None = None) -> Skeleton3D:
    """The skeleton of ``F`` posed frames.

    Args:
        landmarks: the body model's landmarks ``[F, K, 3]`` (``model.landmarks(vertices)``).
        vertices: the posed vertices ``[F, V, 3]`` (for the face points).
        face68: the iBUG points on this body model, or None.
    """
    frames = landmarks.shape[0]
    body = landmarks.new_zeros(frames, NUM_BODY_POINTS, 3)
    present = torch.zeros(NUM_BODY_POINTS, dtype=torch.bool)
    for k, j in _OPENPOSE.items():
        body[:, j] = landmarks[:, k]
        present[j] = True
    body[:, NECK] = (body[:, RIGHT_SHOULDER] + body[:, LEFT_SHOULDER]) / 2
    present[NECK] = True
    return Skeleton3D(body, present, None if face68 is None else face68(vertices))


def project_skeleton(skeleton: Skeleton3D, camera: CameraTrajectory, width: int, height: int,
                     depth: Tensor | None = None) -> Skeleton2D:
    """Pixel positions and visibility of ``skeleton`` seen by ``camera`` (``F`` frames or one).

    Args:
        depth: the rendered surface's depth ``[F, H, W]`` (metres, 0 = nothing), for the
            occlusion test of surface points; None: no occlusion test.
    """
    interior = torch.zeros(NUM_BODY_POINTS, dtype=torch.bool)
    interior[list(INTERIOR)] = True
    body, body_visible = project_points(skeleton.body, camera, width, height, depth, interior)
    body_visible &= skeleton.present
    if skeleton.face is None:
        return Skeleton2D(body, body_visible)
    face, face_visible = project_points(skeleton.face, camera, width, height, depth,
                                  torch.zeros(skeleton.face.shape[1], dtype=torch.bool))
    return Skeleton2D(body, body_visible, face, face_visible)


def project_points(points: Tensor, camera: CameraTrajectory, width: int, height: int, depth: Tensor | None = None,
                   interior: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Pixels ``[F, N, 2]`` (float32) and visibility ``[F, N]`` of world points ``[F, N, 3]``
    seen by ``camera`` (``F`` frames or one); ``depth`` and ``interior`` (``[N]`` bool, points
    exempt from the occlusion test) as :func:`project_skeleton` uses them."""
    cam, k = rz.camera_space(points, camera, width, height)  # float64
    z = cam[..., 2]
    uvw = cam @ k.double().transpose(-1, -2)
    uv = uvw[..., :2] / torch.where(z > 1e-6, z, torch.ones_like(z))[..., None]
    visible = (z > 1e-6) & (uv[..., 0] >= 0) & (uv[..., 0] < width) & (uv[..., 1] >= 0) & (uv[..., 1] < height)
    if depth is not None:
        col = uv[..., 0].floor().long().clamp(0, width - 1)
        row = uv[..., 1].floor().long().clamp(0, height - 1)
        frame = torch.arange(uv.shape[0])[:, None].expand_as(col)
        surface = depth[frame, row, col].double()
        in_front = (surface > 0) & (z > surface + OCCLUSION_TOLERANCE)
        visible &= ~in_front if interior is None else interior | ~in_front
    return uv.float(), visible
