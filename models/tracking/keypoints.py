"""2-D landmark observations of a video, in the order of ``upper_body.LANDMARKS``.

The tracker (``fit.py``) consumes one ``Keypoints2D``: per frame and landmark a pixel
position and a confidence (0 = not observed). Detectors come in through converters:

- ``from_mediapipe``: MediaPipe face mesh (478 points) and pose (33 points), normalised
  image coordinates as MediaPipe returns them (the optional detector module calls this);
- ``from_pose_keypoint``: the ``POSE_KEYPOINT`` type of comfyui_controlnet_aux (OpenPose /
  DWPose: per frame ``{"people": [{"pose_keypoints_2d": [x, y, c] * 18,
  "face_keypoints_2d": [x, y, c] * 70, ...}], "canvas_width", "canvas_height"}``), with
  coordinates normalised to 0..1 or in pixels (detected per frame from their range).

Pixel coordinates are continuous with pixel centres at +0.5 (as ``CameraTrajectory.project``),
so a normalised coordinate ``x`` is the pixel coordinate ``x * W``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from ..body.upper_body import LANDMARKS
from ..errors import InputError

LANDMARK_NAMES: tuple[str, ...] = tuple(lm.name for lm in LANDMARKS)
# A normalised frame has every confident coordinate in 0..1; a little slack for points that
# detectors place just outside the image.
NORMALISED_MAX = 1.5


def checked_observations(points: Tensor, confidence: Tensor, num_points: int, input_name: str,
                         what: str = "points") -> tuple[Tensor, Tensor]:
    """Float32 ``points [F, K, 2]`` and ``confidence [F, K]`` (clamped to 0..1), validated;
    missing or non-finite observations get no weight and a harmless position (0, 0)."""
    points = torch.as_tensor(points, dtype=torch.float32)
    confidence = torch.as_tensor(confidence, dtype=torch.float32)
    if points.ndim != 3 or tuple(points.shape[1:]) != (num_points, 2) or points.shape[0] < 1:
        raise InputError(input_name, f"{what} must be [frames >= 1, {num_points}, 2], got {tuple(points.shape)}.")
    if tuple(confidence.shape) != tuple(points.shape[:2]):
        raise InputError(input_name, f"confidence must be {tuple(points.shape[:2])}, got {tuple(confidence.shape)}.")
    bad = ~torch.isfinite(points).all(-1) | ~torch.isfinite(confidence)
    return torch.where(bad[..., None], 0.0, points), torch.where(bad, 0.0, confidence.clamp(0, 1))


@dataclass
class Keypoints2D:
    """Landmarks of ``F`` frames of a ``width`` x ``height`` video.

    Attributes:
        points: pixel positions ``[F, K, 2]`` (float32), K = ``len(LANDMARKS)``.
        confidence: ``[F, K]`` in 0..1; 0 = not observed (the position is then ignored).
        width, height: image size in pixels.
        names: landmark names (``LANDMARK_NAMES``, the order of ``upper_body.LANDMARKS``).
        notes: what the converter decided (several people, coordinate range), for the user.
    """

    points: Tensor
    confidence: Tensor
    width: int
    height: int
    names: tuple[str, ...] = LANDMARK_NAMES
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.points, self.confidence = checked_observations(self.points, self.confidence, len(self.names), "keypoints")
        if int(self.width) < 1 or int(self.height) < 1:
            raise InputError("keypoints", f"image size must be positive, got {self.width}x{self.height}.")
        self.width, self.height = int(self.width), int(self.height)

    @property
    def frames(self) -> int:
        return self.points.shape[0]

    @property
    def missing_frames(self) -> list[int]:
        """Frames without any observed landmark (the tracker fills them in)."""
        return torch.nonzero((self.confidence <= 0).all(1))[:, 0].tolist()


def _pixels(xy: np.ndarray, width: int, height: int) -> np.ndarray:
    return xy[..., :2] * np.array([width, height], dtype=np.float64)


def from_mediapipe(face: Sequence[np.ndarray | None], pose: Sequence[np.ndarray | None] | None,
                   width: int, height: int) -> Keypoints2D:
    """Keypoints from MediaPipe results, one entry per frame (None: nothing detected).

    Args:
        face: face-mesh landmarks ``[478, >=2]`` (or 468 without irises) in normalised
            image coordinates (x / W, y / H), as MediaPipe returns them.
        pose: pose landmarks ``[33, >=2]`` normalised, optionally with visibility in column
            3 (MediaPipe's ``x, y, z, visibility``), or None for no pose at all.
        width, height: image size in pixels.

    A landmark in both models is taken from the face mesh (denser and more precise), else
    from the pose with its visibility as confidence.
    """
    n = len(face)
    if pose is not None and len(pose) != n:
        raise InputError("keypoints", f"{n} frames of face landmarks but {len(pose)} of pose landmarks.")
    k = len(LANDMARKS)
    points = np.zeros((n, k, 2))
    conf = np.zeros((n, k))
    for f in range(n):
        fa = None if face[f] is None else np.asarray(face[f], dtype=np.float64)
        po = None if pose is None or pose[f] is None else np.asarray(pose[f], dtype=np.float64)
        if fa is not None and (fa.ndim != 2 or fa.shape[0] < 468 or fa.shape[1] < 2):
            raise InputError("keypoints", f"frame {f}: face mesh must be [478, 2+], got {fa.shape}.")
        if po is not None and (po.ndim != 2 or po.shape[0] != 33 or po.shape[1] < 2):
            raise InputError("keypoints", f"frame {f}: pose must be [33, 2+], got {po.shape}.")
        for i, lm in enumerate(LANDMARKS):
            if fa is not None and lm.mediapipe_face is not None and lm.mediapipe_face < len(fa):
                points[f, i], conf[f, i] = _pixels(fa[lm.mediapipe_face], width, height), 1.0
            elif po is not None and lm.mediapipe_pose is not None:
                row = po[lm.mediapipe_pose]
                points[f, i] = _pixels(row, width, height)
                conf[f, i] = np.clip(row[3], 0, 1) if len(row) > 3 else 1.0
    return Keypoints2D(torch.from_numpy(points), torch.from_numpy(conf), width, height)


def _triples(values: Any, count: int) -> np.ndarray | None:
    """A flat ``[x, y, c] * n`` list -> ``[count, 3]`` (zero-padded), or None when absent."""
    if values is None or len(values) == 0:
        return None
    a = np.asarray(values, dtype=np.float64).reshape(-1, 3)
    out = np.zeros((count, 3))
    out[: min(count, len(a))] = a[:count]
    return out


def _bbox_area(*sets: np.ndarray | None) -> float:
    """Area of the box around the confident points of the first set that has at least two."""
    for s in sets:
        if s is not None:
            p = s[s[:, 2] > 0, :2]
            if len(p) >= 2:
                size = p.max(0) - p.min(0)
                return float(size[0] * size[1]) + 1e-12 * float(size.sum())  # a line still ranks
    return -1.0


def _person_landmarks(body: np.ndarray | None, face: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """One person's landmarks ``[K, 2]`` and confidences ``[K]`` in the keypoints' own units.

    iBUG points (face) are preferred over COCO points (body) for landmarks in both.
    """
    k = len(LANDMARKS)
    points, conf = np.zeros((k, 2)), np.zeros(k)
    for i, lm in enumerate(LANDMARKS):
        if face is not None and lm.ibug68:
            rows = face[list(lm.ibug68)]
            c = rows[:, 2].min()
            if c > 0:
                points[i], conf[i] = rows[:, :2].mean(0), c
                continue
        if body is not None and lm.openpose18 is not None:
            row = body[lm.openpose18]
            if row[2] > 0:
                points[i], conf[i] = row[:2], row[2]
    return points, conf


def from_pose_keypoint(frames: Sequence[dict] | dict, width: int | None = None,
                       height: int | None = None) -> Keypoints2D:
    """Keypoints from comfyui_controlnet_aux ``POSE_KEYPOINT`` (a list of per-frame dicts).

    The largest person of a frame (by the box of their face points, else body points) is
    taken, and the frames where several were found are named in ``notes``. Coordinates are
    taken as normalised when every confident one is within 0..1 (DWPose), else as pixels of
    the frame's canvas (OpenPose); both are mapped to ``width`` x ``height`` (default: the
    first frame's canvas).
    """
    if isinstance(frames, dict):
        frames = [frames]
    if not isinstance(frames, (list, tuple)) or not frames:
        raise InputError("pose_keypoint", "expected a non-empty list of frames (POSE_KEYPOINT).")
    for f, fr in enumerate(frames):
        if not isinstance(fr, dict):
            raise InputError("pose_keypoint", f"frame {f} is a {type(fr).__name__}, not a dict with 'people'.")
    first = frames[0]
    width = int(width or first.get("canvas_width") or 0)
    height = int(height or first.get("canvas_height") or 0)
    if width < 1 or height < 1:
        raise InputError("pose_keypoint", "no canvas_width/canvas_height in the keypoints: pass width and height.")
    k = len(LANDMARKS)
    points, conf = np.zeros((len(frames), k, 2)), np.zeros((len(frames), k))
    several, normalised, pixel = [], [], []
    for f, fr in enumerate(frames):
        people = []
        for person in fr.get("people") or []:
            body = _triples(person.get("pose_keypoints_2d"), 18)
            face = _triples(person.get("face_keypoints_2d"), 70)
            people.append((body, face))
        if not people:
            continue
        if len(people) > 1:
            several.append(f)
        # Face box first: it is what the tracker fits, and a face close to the camera is
        # the subject even when a farther body is wider.
        face_areas = [_bbox_area(fa) for _b, fa in people]
        areas = face_areas if max(face_areas) > 0 else [_bbox_area(b) for b, _fa in people]
        body, face = people[int(np.argmax(areas))]
        p, c = _person_landmarks(body, face)
        if not (c > 0).any():
            continue
        canvas_w = float(fr.get("canvas_width") or width)
        canvas_h = float(fr.get("canvas_height") or height)
        if np.abs(p[c > 0]).max() <= NORMALISED_MAX:
            normalised.append(f)
            p = p * [width, height]
        else:
            pixel.append(f)
            p = p * [width / canvas_w, height / canvas_h]
        points[f], conf[f] = p, np.clip(c, 0, 1)
    notes = []
    if several:
        notes.append(f"several people in {len(several)} frame(s) ({_frame_list(several)}): the largest was tracked.")
    if normalised and pixel:
        notes.append(f"coordinates were normalised in {len(normalised)} frame(s) and in pixels in {len(pixel)}.")
    return Keypoints2D(torch.from_numpy(points), torch.from_numpy(conf), width, height, notes=notes)


def _frame_list(frames: Sequence[int], limit: int = 12) -> str:
    s = ", ".join(str(f) for f in frames[:limit])
    return s + (", ..." if len(frames) > limit else "")
