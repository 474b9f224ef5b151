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
TILE_LEVELS = 2  # tiles of 1/2, then 1/4 of the photo's side where the whole photo shows no face


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

    MediaPipe's full-range model sees its input at 192x192, so a face under about a twentieth
    of the photo's side is lost on the whole photo: where the whole photo shows none, it is
    searched again in overlapping tiles of half and then a quarter of the photo's side
    (``TILE_LEVELS``), which finds faces down to about 1 % of the side.

    Args:
        rgb: ``[H, W, 3]`` uint8.
    Returns:
        boxes in the photo's pixels.
    """
    face_detection, _ = _solutions()
    small, scale = _reduced(rgb, DETECTION_SIDE)
    h, w = small.shape[:2]
    with face_detection.FaceDetection(model_selection=1, min_detection_confidence=MIN_FACE_SCORE) as detector:
        for level in range(TILE_LEVELS + 1):
            side = max(h, w) / 2 ** level
            step = side / 2
            boxes = []
            for y0 in _starts(h, side, step):
                for x0 in _starts(w, side, step):
                    tile = small[y0:y0 + int(side), x0:x0 + int(side)]
                    boxes += _detect(detector, tile, x0, y0)
            if boxes:
                return sorted([_scaled(b, 1 / scale) for b in _suppress(boxes)], key=lambda b: -b.size)
    return []


def _starts(length: int, side: float, step: float) -> list[int]:
    """Tile origins covering ``length`` with tiles of ``side`` every ``step`` (the last flush)."""
    if side >= length:
        return [0]
    starts = [int(round(i * step)) for i in range(int((length - side) // step) + 1)]
    return starts + ([int(length - side)] if starts[-1] + side < length else [])


def _detect(detector, tile: np.ndarray, x0: int, y0: int) -> list[FaceBox]:
    th, tw = tile.shape[:2]
    result = detector.process(np.ascontiguousarray(tile))
    boxes = []
    for det in getattr(result, "detections", None) or []:
        b = det.location_data.relative_bounding_box
        bx, by = x0 + b.xmin * tw, y0 + b.ymin * th
        boxes.append(FaceBox(bx, by, bx + b.width * tw, by + b.height * th, float(det.score[0])))
    return boxes


def _scaled(box: FaceBox, factor: float) -> FaceBox:
    return FaceBox(box.x0 * factor, box.y0 * factor, box.x1 * factor, box.y1 * factor, box.score)


def _suppress(boxes: list[FaceBox], overlap: float = 0.3) -> list[FaceBox]:
    """The boxes without those overlapping a higher-scoring one (the same face in two tiles)."""
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda b: -b.score):
        if all(_iou(box, k) < overlap for k in kept):
            kept.append(box)
    return kept


def _iou(a: FaceBox, b: FaceBox) -> float:
    ix = max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0))
    iy = max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
    inter = ix * iy
    union = (a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter
    return inter / union if union > 0 else 0.0


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
