"""What MediaPipe tells about a portrait before any fitting: where the faces are (its
full-range face detector, which finds faces down to a few dozen pixels in a large photo)
and which pixels belong to the person (its selfie segmentation). Both models ship in the
MediaPipe wheel; nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..tracking import mediapipe_detector as mpd

DETECTION_SIDE = 1280  # the face detector sees the photo reduced to this longer side
MIN_FACE_SCORE = 0.5


@dataclass(frozen=True)
class FaceBox:
    """A detected face in photo pixels: ``x0, y0, x1, y1`` (may reach past the edges) and score."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float

    @property
    def size(self) -> float:
        return max(self.x1 - self.x0, self.y1 - self.y0)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2


def _solutions():
    mpd._load_solutions()  # the clear error when MediaPipe is missing or unusable
    from mediapipe.python.solutions import face_detection, selfie_segmentation

    return face_detection, selfie_segmentation


def _reduced(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    import cv2

    scale = min(1.0, side / max(rgb.shape[:2]))
    if scale == 1.0:
        return rgb, 1.0
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale


def detect_faces(rgb: np.ndarray) -> list[FaceBox]:
    """Faces in a photo, largest first.

    Args:
        rgb: ``[H, W, 3]`` uint8.
    Returns:
        boxes in the photo's pixels (the full-range model; faces from about 2 % of the
        photo's side upward).
    """
    face_detection, _ = _solutions()
    small, scale = _reduced(rgb, DETECTION_SIDE)
    h, w = small.shape[:2]
    with face_detection.FaceDetection(model_selection=1, min_detection_confidence=MIN_FACE_SCORE) as detector:
        result = detector.process(np.ascontiguousarray(small))
    boxes = []
    for det in getattr(result, "detections", None) or []:
        b = det.location_data.relative_bounding_box
        x0, y0 = b.xmin * w / scale, b.ymin * h / scale
        boxes.append(FaceBox(x0, y0, x0 + b.width * w / scale, y0 + b.height * h / scale, float(det.score[0])))
    return sorted(boxes, key=lambda b: -b.size)


def person_matte(rgb: np.ndarray) -> np.ndarray:
    """The person's soft matte ``[H, W]`` float32 in 0..1 (MediaPipe selfie segmentation,
    general model, run on the photo and upsampled; edges follow the photo's own)."""
    import cv2

    _, selfie_segmentation = _solutions()
    small, _scale = _reduced(rgb, 1024)
    with selfie_segmentation.SelfieSegmentation(model_selection=0) as segmenter:
        mask = segmenter.process(np.ascontiguousarray(small)).segmentation_mask
    if mask is None:
        raise InputError("image", "MediaPipe's selfie segmentation returned nothing for this photo.")
    mask = np.clip(mask.astype(np.float32), 0, 1)
    if mask.shape != rgb.shape[:2]:
        mask = cv2.resize(mask, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    return mask
