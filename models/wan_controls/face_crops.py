"""Face crops for Wan-Animate's face encoder: the driving video's face, boxed around its 68
iBUG points the way Wan-Animate's preprocessing boxes them, resized to a square.

Wan2.2's ``wan/modules/animate/preprocess`` (``get_face_bboxes``, used with scale 1.3 and
resized to 512x512): the box of the face points grows in area by ``scale`` at its own
aspect; the width grows evenly on both sides, the height three parts above (the forehead,
which the iBUG points stop short of) to one below; the crop is resized to the square,
stretched. Two differences, both for steadier crops: the points are the tracked mesh's
(smooth in time, present in every frame, also on a face turned away) instead of each
frame's detection, and a box that leaves the frame is filled with black instead of being
cut at the edge (a cut box moves the face off-centre and changes its aspect).
Boxes can further be smoothed in time (``smooth_boxes``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..tracking.body_track import BodyTrack
from .face68 import SurfacePoints
from .skeleton import project_points

SCALE = 1.3  # area growth of the box (Wan-Animate's preprocessing)
CROP_SIZE = 512  # Wan-Animate's face encoder input


def face_boxes(points: Tensor, scale: float = SCALE) -> Tensor:
    """Boxes ``[F, 4]`` (x0, y0, x1, y1 in pixels, continuous) around face points
    ``[F, 68, 2]``, grown as Wan-Animate grows them (see the module docstring)."""
    low, high = points.min(1).values, points.max(1).values
    size = (high - low).clamp(min=1e-3)  # [F, 2]
    grow = size * (math.sqrt(scale) - 1)  # added width and height
    x0 = low[:, 0] - grow[:, 0] / 2
    x1 = high[:, 0] + grow[:, 0] / 2
    y0 = low[:, 1] - grow[:, 1] * 3 / 4
    y1 = high[:, 1] + grow[:, 1] / 4
    return torch.stack([x0, y0, x1, y1], 1)


def smooth_boxes(boxes: Tensor, sigma: float) -> Tensor:
    """Boxes ``[F, 4]`` with centre and size smoothed in time by a Gaussian of ``sigma``
    frames (0: unchanged); the ends are held, so a clip's first and last boxes stay put."""
    if sigma <= 0 or boxes.shape[0] < 2:
        return boxes.clone()
    centre_size = torch.cat([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], 1).double()
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)
    taps = taps / taps.sum()
    padded = torch.cat([centre_size[:1].expand(radius, -1), centre_size, centre_size[-1:].expand(radius, -1)])
    smooth = torch.nn.functional.conv1d(padded.T[:, None], taps[None, None])[:, 0].T  # [F, 4]
    half = smooth[:, 2:] / 2
    return torch.cat([smooth[:, :2] - half, smooth[:, :2] + half], 1).to(boxes.dtype)


def crop_faces(images: Tensor, boxes: Tensor, size: int = CROP_SIZE, out: Tensor | None = None) -> Tensor:
    """Crops ``[F, size, size, C]`` of ``images [F, H, W, C]`` (float 0..1) in ``boxes [F, 4]``
    (black outside the image); bilinear when enlarging, area averaging when shrinking."""
    import cv2

    frames = images.shape[0]
    if out is None:
        out = torch.empty(frames, size, size, images.shape[-1], dtype=torch.float32)
    for f in range(frames):
        frame = images[f].float().cpu().numpy()
        x0, y0, x1, y1 = boxes[f].tolist()
        sx, sy = (x1 - x0) / size, (y1 - y0) / size
        if max(sx, sy) > 1.5:  # shrinking: average the area first, then place exactly
            factor = max(1, int(min(sx, sy)))
            small = cv2.resize(frame, (max(1, frame.shape[1] // factor), max(1, frame.shape[0] // factor)),
                               interpolation=cv2.INTER_AREA)
            fx, fy = frame.shape[1] / small.shape[1], frame.shape[0] / small.shape[0]  # exact, after rounding
            frame = small if small.ndim == 3 else small[..., None]
            x0, y0, sx, sy = x0 / fx, y0 / fy, sx / fx, sy / fy
        # Output pixel centre (i + 0.5) maps to x0 + (i + 0.5) sx (continuous); cv2 puts
        # centres at integers, hence the half-pixel shifts on both sides.
        matrix = np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5]])
        crop = cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        out[f] = torch.from_numpy(crop.reshape(size, size, -1))
    return out


def driving_face_points(track: BodyTrack, face68: SurfacePoints) -> Tensor:
    """The iBUG face points of the driving video's fit, in the driving video's pixels
    ``[F, 68, 2]``: where the tracked face is in each frame (smooth in time, and filled in
    frames where no face was detected)."""
    fit = track.driving
    with torch.no_grad():
        world = face68(track.model(fit.params).float())
    return project_points(world, fit.camera, fit.keypoints.width, fit.keypoints.height)[0]
