"""Cutting a video into training clips: where clips start, the crop that keeps the face,
and the reference frame.

Clips. ``clip_starts`` puts clips of ``frames`` frames (4k+1, as Wan needs) every ``stride``
frames from the start; a video shorter than one clip has none. ``max_clips`` keeps that many
spread evenly over the video (first and last included), so a long video contributes varied
clips rather than its first seconds.

Crop (one per clip, the same for all its frames, so the camera stays static and the track's
single camera fits every frame). From the face boxes MediaPipe found in the clip's frames:

- their union (the face wherever it moves during the clip);
- a box of the output's aspect ``width:height`` around it, ``CROP_FACE_SCALE`` (2.5) times
  the union's size on its binding side, centred on the union shifted down by
  ``CROP_DOWN_SHIFT`` (0.2) face heights: the whole head, the neck and the shoulders, the
  paper's upper-body framing, with the face a little above the centre;
- shrunk (keeping the aspect) to fit into the frame if it is larger, then moved into it:
  never padded, so every pixel is real video.

The crop is then resized to ``width x height`` (bilinear with antialiasing). Pixel boxes are
whole pixels of the frames they were found in; :func:`crop_camera` gives the camera of a crop
(for ground truth or a calibrated source camera) and :func:`crop_fov` a known field of view
of the whole frame as the crop's.

Reference frame (:func:`choose_reference`): another frame of the same video with a detected
face inside the clip's crop, outside the clip when there is one: by default the farthest
from the clip (the most different pose and expression the video offers), or the one nearest
to ``offset`` frames before or after it. Without such a frame outside, the clip frame
farthest from the clip's middle is used (said in the sample's info).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...models.camera.trajectory import CameraTrajectory, focal_from_fov, fov_from_focal

CROP_FACE_SCALE = 2.5  # crop size over the face box's (the union over the clip)
CROP_DOWN_SHIFT = 0.2  # crop centre below the face box's centre, in face-box heights
REFERENCE_INSIDE = 0.9  # share of a reference frame's face box that must lie inside the crop


@dataclass(frozen=True)
class CropBox:
    """A crop in whole pixels of the frames it was found in: ``x, y`` of its top-left corner."""

    x: int
    y: int
    width: int
    height: int

    def scaled(self, factor_x: float, factor_y: float) -> tuple[float, float, float, float]:
        """``(x, y, width, height)`` in another resolution of the same frames (e.g. native)."""
        return self.x * factor_x, self.y * factor_y, self.width * factor_x, self.height * factor_y

    def as_dict(self) -> dict:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


def check_clip_frames(frames: int) -> None:
    """Raise unless ``frames`` is 4k+1 (5, 9, 13, 17, ..., 81), what Wan's VAE needs."""
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1 or (frames - 1) % 4:
        raise ValueError(f"frames must be 4k+1 (5, 9, 13, 17, ..., 81) for Wan, got {frames!r}")


def clip_starts(num_frames: int, frames: int, stride: int | None = None, max_clips: int | None = None) -> list[int]:
    """First frames of the clips of a ``num_frames``-frame video (see the module docstring)."""
    check_clip_frames(frames)
    stride = frames if stride is None else stride
    if stride < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")
    if max_clips is not None and max_clips < 1:
        raise ValueError(f"max_clips must be at least 1, got {max_clips}")
    starts = list(range(0, num_frames - frames + 1, stride))
    if max_clips is not None and len(starts) > max_clips:
        pick = np.linspace(0, len(starts) - 1, max_clips).round().astype(int)
        starts = [starts[i] for i in sorted(set(pick.tolist()))]
    return starts


def face_boxes(faces: list[np.ndarray | None]) -> Tensor:
    """Boxes ``[F, 4]`` (x0, y0, x1, y1 in pixels) around per-frame face points ``[N, 2]``;
    NaN rows for frames without a face."""
    out = torch.full((len(faces), 4), float("nan"), dtype=torch.float64)
    for f, points in enumerate(faces):
        if points is not None:
            xy = torch.as_tensor(np.asarray(points)[:, :2], dtype=torch.float64)
            out[f] = torch.cat([xy.amin(0), xy.amax(0)])
    return out


def crop_for_faces(boxes: Tensor, image_size: tuple[int, int], out_size: tuple[int, int],
                   face_scale: float = CROP_FACE_SCALE, down_shift: float = CROP_DOWN_SHIFT) -> CropBox:
    """The crop of a clip from its frames' face boxes ``[F, 4]`` (NaN rows ignored).

    Args:
        boxes: per-frame face boxes in pixels of frames of ``image_size``.
        image_size: ``(width, height)`` of the frames.
        out_size: ``(width, height)`` of the output: the crop has its aspect.
    """
    seen = boxes[~torch.isnan(boxes).any(1)]
    if not len(seen):
        raise ValueError("no face box to crop around")
    image_w, image_h = image_size
    out_w, out_h = out_size
    x0, y0 = float(seen[:, 0].min()), float(seen[:, 1].min())
    x1, y1 = float(seen[:, 2].max()), float(seen[:, 3].max())
    face_w, face_h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    aspect = out_w / out_h
    height = face_scale * max(face_h, face_w / aspect)
    height = min(height, image_h, image_w / aspect)  # fit into the frame, keeping the aspect
    crop_h = max(1, min(image_h, int(round(height))))
    crop_w = max(1, min(image_w, int(round(crop_h * aspect))))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + down_shift * face_h
    left = int(round(cx - crop_w / 2))
    top = int(round(cy - crop_h / 2))
    left = min(max(left, 0), image_w - crop_w)
    top = min(max(top, 0), image_h - crop_h)
    return CropBox(left, top, crop_w, crop_h)


def crop_and_resize(frames: Tensor, box: CropBox, width: int, height: int) -> Tensor:
    """Frames ``[F, H, W, 3]`` (uint8 or float) cropped to ``box`` and resized to ``width x
    height``: float32 in 0..1 ``[F, height, width, 3]`` (a ComfyUI IMAGE)."""
    crop = frames[:, box.y:box.y + box.height, box.x:box.x + box.width]
    crop = crop.float() / 255.0 if crop.dtype == torch.uint8 else crop.float()
    if (box.width, box.height) == (width, height):
        return crop.contiguous()
    out = []
    for start in range(0, len(crop), 16):  # bounded memory for long clips
        chunk = crop[start:start + 16].permute(0, 3, 1, 2)
        out.append(F.interpolate(chunk, size=(height, width), mode="bilinear", align_corners=False,
                                 antialias=True).permute(0, 2, 3, 1))
    return torch.cat(out).clamp_(0, 1).contiguous()


def crop_camera(camera: CameraTrajectory, box: CropBox, image_size: tuple[int, int],
                out_size: tuple[int, int] | None = None) -> CameraTrajectory:
    """The camera that sees the crop ``box`` of ``camera``'s ``image_size`` frames, resized to
    ``out_size`` (None: resized keeping its aspect): the same extrinsics, the crop's
    intrinsics normalised by its size as the pack stores them."""
    image_w, image_h = image_size
    k = camera.intrinsics(image_w, image_h)
    fy, fx = k[:, 1, 1], k[:, 0, 0]
    principal = torch.stack([(k[:, 0, 2] - box.x) / box.width, (k[:, 1, 2] - box.y) / box.height], -1)
    stretch = 1.0 if out_size is None else (out_size[0] * box.height) / (out_size[1] * box.width)
    return CameraTrajectory(camera.w2c, fy / box.height, fx / fy * stretch, principal)


def crop_fov(fov_deg: float, box: CropBox, image_height: int) -> float:
    """The vertical field of view of the crop ``box`` of a frame ``image_height`` pixels tall
    whose own field of view is ``fov_deg`` (a centred principal point assumed)."""
    focal = float(focal_from_fov(fov_deg)) * image_height / box.height
    return float(fov_from_focal(focal))


def box_inside(boxes: Tensor, box: CropBox, share: float = REFERENCE_INSIDE) -> Tensor:
    """Per face box ``[F, 4]``: whether at least ``share`` of its area lies inside ``box``
    (False for NaN rows)."""
    ix0 = boxes[:, 0].clamp(min=box.x)
    iy0 = boxes[:, 1].clamp(min=box.y)
    ix1 = boxes[:, 2].clamp(max=box.x + box.width)
    iy1 = boxes[:, 3].clamp(max=box.y + box.height)
    inter = (ix1 - ix0).clamp(min=0) * (iy1 - iy0).clamp(min=0)
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1e-9)
    return torch.nan_to_num(inter / area, nan=0.0) >= share


def choose_reference(candidates: Tensor, start: int, frames: int, offset: int | None = None) -> tuple[int, bool]:
    """The reference frame of the clip ``start .. start + frames - 1`` and whether it lies
    outside the clip.

    Args:
        candidates: ``[N]`` bool, frames that may serve (a face inside the clip's crop).
        offset: None: the candidate outside the clip farthest from it; else the one whose
            distance from the clip is nearest to ``offset`` frames (ties: the earlier frame).
    Returns:
        ``(index, outside)``; ``(-1, False)`` when no frame is a candidate.
    """
    n = len(candidates)
    index = torch.arange(n)
    end = start + frames - 1
    distance = torch.where(index < start, start - index, index - end).clamp(min=0)
    outside = candidates & (distance > 0)
    if bool(outside.any()):
        if offset is None:
            score = torch.where(outside, distance, -1)
            return int(score.argmax()), True  # argmax: the first of equals, the earlier frame
        gap = torch.where(outside, (distance - offset).abs(), n + abs(offset) + 1)
        return int(gap.argmin()), True
    if bool(candidates.any()):
        middle = start + (frames - 1) / 2
        score = torch.where(candidates, (index - middle).abs(), -1.0)
        return int(score.argmax()), False
    return -1, False


__all__ = ["CROP_DOWN_SHIFT", "CROP_FACE_SCALE", "CropBox", "box_inside", "check_clip_frames", "choose_reference",
           "clip_starts", "crop_and_resize", "crop_camera", "crop_for_faces", "crop_fov", "face_boxes"]
