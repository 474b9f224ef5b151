"""Skeleton images from 2-D keypoints, drawn the way the Wan models' own preprocessing draws them.

Styles (``STYLES``); every number below follows the named source:

``"wan_animate"``: Wan 2.2 Animate's pose video, Wan-Video/Wan2.2
``wan/modules/animate/preprocess/human_visualization.py`` ``draw_aapose_by_meta_new`` ->
``draw_aapose_new`` with its defaults (``threshold=0.5``, ``stickwidth_type="v2"``,
``draw_head=True``), on a black canvas of the frame size (``process_pipepline.py``;
kijai/ComfyUI-WanAnimatePreprocess ``DrawViTPose`` likewise draws at the generation size).

- limbs: filled ellipses along each limb (``cv2.ellipse2Poly`` with delta 1, then
  ``cv2.fillConvexPoly``), semi-axes ``(int(length / 2), stick)``, colour ``int(c * 0.6)``;
- ``stick = max(int(min(H, W) / 200) - 1, 1)`` ("v2"); joints: filled circles of radius
  ``stick`` in the full colour, drawn after all limbs;
- no face points: Wan-Animate gets the face as 512x512 crops, not dots, and its drawing has
  no face option (``face`` is ignored). Its hands (21 points each) and two toe points are not
  COCO-18 keypoints and are not drawn here;
- RGB: frames are read as RGB (decord) and the pose video written with moviepy, so the
  triplets of ``openpose.COLORS`` are the video's RGB colours.

``"dwpose"``: VACE's pose annotator, ali-vilab/VACE ``vace/annotators/pose.py``
``PoseBodyFaceVideoAnnotator`` (the "pose" task: body and face, no hands), drawing with
``vace/annotators/dwpose/util.py`` ``draw_bodypose`` and ``draw_facepose`` (the same
functions as huggingface/controlnet_aux ``src/controlnet_aux/dwpose/util.py``).

- canvas: ``resize_image(frame, RESIZE_SIZE=1024)`` (``vace/annotators/dwpose/wholebody.py``):
  both sides scaled so the short one is 1024, each rounded to a multiple of 64; the drawing
  is then resized to the frame size with ``cv2.INTER_AREA`` (``INTER_LANCZOS4`` when the
  frame has more pixels than the canvas). So lengths below are canvas pixels;
- limbs: the same ellipses, ``stickwidth = 4``, then the whole canvas ``* 0.6`` (truncated);
  joints: circles of radius 4, full colour; face: white dots of radius 3, drawn last;
- channels reversed: VACE reads frames as RGB, draws the triplets, returns
  ``canvas[..., ::-1]`` and saves it as an RGB video (imageio). In its pose videos the
  neck-right shoulder limb, ``(255, 0, 0)`` in the source, is blue; this style matches that.
- ``draw_facepose`` also skips dots on canvas row or column 0 (its "missing" marker); not
  reproduced: visibility is explicit here.

Visibility is the caller's; from detector scores the sources draw a point when
``score >= 0.5`` (Wan-Animate, both ends for a limb), body ``score > 0.3`` and face
``score >= 0.3`` (VACE). NaN or infinite positions must be marked invisible (ValueError).

Coordinates are continuous pixels, x right, y down: pixel ``(u, v)`` covers
``[u, u + 1) x [v, v + 1)``, its centre at ``+0.5``. A point is drawn on the pixel that holds
it, ``floor(x)`` (the sources' ``int(x)`` for the non-negative coordinates they see; floor
keeps points just off the top/left edge off the canvas); a limb's ellipse is centred on
``floor`` of the midpoint, with length and angle from the continuous points, truncated to
int as in the sources. Points more than 4 canvas sizes away are clamped there (no overflow).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from torch import Tensor

from ..errors import InputError
from .openpose import COLORS, LIMBS, NUM_BODY_KEYPOINTS, NUM_FACE_KEYPOINTS

STYLES = ("wan_animate", "dwpose")
LIMB_INTENSITY = 0.6  # both sources: limbs at 60 % of the joint colours
VACE_SHORT_SIDE = 1024  # VACE PoseAnnotator RESIZE_SIZE default
VACE_STICK, VACE_JOINT_RADIUS = 4, 4  # dwpose/util.py draw_bodypose: stickwidth, cv2.circle radius
VACE_FACE_RADIUS = 3  # dwpose/util.py draw_facepose
FACE_COLOUR = (255, 255, 255)

_LIMB_A = np.array([a for a, _ in LIMBS])
_LIMB_B = np.array([b for _, b in LIMBS])


@dataclass(frozen=True)
class PoseStyle:
    """How one style draws at one frame size; lengths in canvas pixels."""

    canvas_size: tuple[int, int]  # (width, height) drawn on, then resized to the frame
    stick: int  # limb ellipse half-width (minor semi-axis)
    joint_radius: int
    face_radius: int  # 0: face points are not drawn
    reverse_channels: bool  # the model saw the colour triplets as BGR


def vace_canvas_size(width: int, height: int) -> tuple[int, int]:
    """VACE's drawing canvas ``(width, height)``: short side 1024, each side a multiple of 64."""
    k = VACE_SHORT_SIDE / min(width, height)
    return round(width * k / 64) * 64, round(height * k / 64) * 64  # round half even, as np.round


def pose_style(style: str, width: int, height: int) -> PoseStyle:
    """The canvas, stick width and radii ``style`` uses for ``width`` x ``height`` frames."""
    if style not in STYLES:
        raise InputError("style", f"unknown pose style {style!r}; use one of {', '.join(STYLES)}.")
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise InputError(name, f"must be a positive whole number of pixels, got {v!r}.")
    if style == "wan_animate":
        stick = max(int(min(width, height) / 200) - 1, 1)
        return PoseStyle((width, height), stick, stick, 0, False)
    return PoseStyle(vace_canvas_size(width, height), VACE_STICK, VACE_JOINT_RADIUS, VACE_FACE_RADIUS, True)


def _colours(reverse: bool) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """Limb and joint colours as cv2 wants them (``int(c * 0.6)`` as both sources compute it)."""
    order = slice(None, None, -1 if reverse else 1)
    limbs = [tuple(int(c * LIMB_INTENSITY) for c in COLORS[i][order]) for i in range(len(LIMBS))]
    return limbs, [tuple(c[order]) for c in COLORS]


def _numpy(x: Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def _points(points, visible, count: int, name: str, frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Checked float64 positions ``[F, count, 2]`` (0 where invisible) and bool visibility ``[F, count]``."""
    p = _numpy(points).astype(np.float64)
    if p.ndim != 3 or p.shape[1:] != (count, 2) or (frames is not None and len(p) != frames):
        want = "frames" if frames is None else frames
        raise InputError(name, f"expected pixel positions [{want}, {count}, 2], got {list(p.shape)}.")
    v = np.ones(p.shape[:2], bool) if visible is None else _numpy(visible)
    if v.shape != p.shape[:2]:
        raise InputError(f"{name}_visible", f"expected [{len(p)}, {count}] flags, got {list(v.shape)}.")
    v = v.astype(bool)
    bad = np.argwhere(v & ~np.isfinite(p).all(-1))
    if len(bad):
        f, i = bad[0].tolist()
        raise InputError(name, f"point {i} of frame {f} is visible but at {p[f, i].tolist()}; "
                               "mark points without a position invisible.")
    return np.where(v[..., None], p, 0.0), v


class _TiledAreaResize:
    """``cv2.resize(canvas, size, INTER_AREA)`` of a mostly black canvas, only where it was drawn on.

    Area resampling maps each period of ``p`` canvas pixels onto exactly ``q`` frame pixels
    (``p / q`` = canvas / frame size in lowest terms), so a crop of whole periods resizes to
    the same pixels the whole canvas does there (tested). Tiles are whole periods of at least
    32 canvas pixels; tiles under a drawn box are resized, then cleared for the next frame.
    """

    def __init__(self, canvas_size: tuple[int, int], size: tuple[int, int]):
        self.src, self.dst, self.count = [], [], []
        for c, s in zip(canvas_size, size):
            g = math.gcd(c, s)
            periods = -(-32 // (c // g))
            self.src.append(c // g * periods)
            self.dst.append(s // g * periods)
            self.count.append(-(-g // periods))
        self.canvas_size = canvas_size

    def __call__(self, canvas: np.ndarray, out: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> None:
        """Resize ``canvas`` into ``out`` (black where no box is) and clear it; ``boxes`` are
        inclusive ``(x0, y0, x1, y1)`` canvas pixels covering everything drawn."""
        (tx, ty), (dx, dy), (cw, ch) = self.src, self.dst, self.canvas_size
        hit = np.zeros(self.count[::-1], bool)
        for x0, y0, x1, y1 in boxes:
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, cw - 1), min(y1, ch - 1)
            if x0 <= x1 and y0 <= y1:
                hit[y0 // ty:y1 // ty + 1, x0 // tx:x1 // tx + 1] = True
        step = np.diff(hit.astype(np.int8), axis=1, prepend=0, append=0)  # runs of hit tiles per row
        rows, c0s = np.nonzero(step == 1)
        for r, c0, c1 in zip(rows.tolist(), c0s.tolist(), np.nonzero(step == -1)[1].tolist()):
            src = canvas[r * ty:(r + 1) * ty, c0 * tx:c1 * tx]
            dst = out[r * dy:(r + 1) * dy, c0 * dx:c1 * dx]
            dst[...] = cv2.resize(src, dst.shape[1::-1], interpolation=cv2.INTER_AREA)
            src[...] = 0


def draw_pose(body: Tensor | np.ndarray, body_visible: Tensor | np.ndarray,
              face: Tensor | np.ndarray | None = None, face_visible: Tensor | np.ndarray | None = None,
              *, width: int, height: int, style: str = "wan_animate") -> np.ndarray:
    """OpenPose skeletons on black, uint8 RGB ``[F, height, width, 3]``.

    Args:
        body: COCO-18 positions ``[F, 18, 2]`` in continuous pixels (module docstring).
        body_visible: ``[F, 18]`` bool; a joint is drawn when visible, a limb when both ends are.
        face: iBUG-68 positions ``[F, 68, 2]`` or None; drawn by ``"dwpose"`` only.
        face_visible: ``[F, 68]`` bool, or None for all visible.
        style: one of ``STYLES``.
    """
    spec = pose_style(style, width, height)
    body, body_on = _points(body, body_visible, NUM_BODY_KEYPOINTS, "body")
    frames = len(body)
    if face is not None:
        face, face_on = _points(face, face_visible, NUM_FACE_KEYPOINTS, "face", frames)
    draw_face = face is not None and spec.face_radius > 0
    limb_colours, joint_colours = _colours(spec.reverse_channels)

    # Everything in canvas pixels, vectorised over frames; the loop below only calls cv2.
    (cw, ch), stick, radius = spec.canvas_size, spec.stick, spec.joint_radius
    scale, limit = np.array([cw / width, ch / height]), 4.0 * max(cw, ch)
    pts = np.clip(body * scale, -limit, limit)
    a, b = pts[:, _LIMB_A], pts[:, _LIMB_B]
    d = a - b
    centre = np.floor((a + b) / 2).astype(np.int64)
    major = (np.hypot(d[..., 0], d[..., 1]) / 2).astype(np.int64)
    angle = np.trunc(np.degrees(np.arctan2(d[..., 1], d[..., 0]))).astype(np.int64)
    limb_on = body_on[:, _LIMB_A] & body_on[:, _LIMB_B]
    joints = np.floor(pts).astype(np.int64)
    if draw_face:
        dots = np.floor(np.clip(face * scale, -limit, limit)).astype(np.int64)

    out = np.zeros((frames, height, width, 3), np.uint8)
    direct = (cw, ch) == (width, height)
    tiled = not direct and cw >= width and ch >= height
    canvas = None if direct else np.zeros((ch, cw, 3), np.uint8)
    resize = _TiledAreaResize((cw, ch), (width, height)) if tiled else None
    if resize is not None:  # bounding half-extents of each limb's ellipse, +1 for rounding
        t = np.radians(angle)
        ext_x = np.ceil(np.hypot(major * np.cos(t), stick * np.sin(t))).astype(np.int64) + 1
        ext_y = np.ceil(np.hypot(major * np.sin(t), stick * np.cos(t))).astype(np.int64) + 1
    for f in range(frames):
        img = out[f] if direct else canvas
        boxes = []
        for i in np.flatnonzero(limb_on[f]).tolist():
            cx, cy = centre[f, i].tolist()
            poly = cv2.ellipse2Poly((cx, cy), (int(major[f, i]), stick), int(angle[f, i]), 0, 360, 1)
            cv2.fillConvexPoly(img, poly, limb_colours[i])
            if resize is not None:
                ex, ey = int(ext_x[f, i]), int(ext_y[f, i])
                boxes.append((cx - ex, cy - ey, cx + ex, cy + ey))
        for j in np.flatnonzero(body_on[f]).tolist():
            x, y = joints[f, j].tolist()
            cv2.circle(img, (x, y), radius, joint_colours[j], -1)
            if resize is not None:
                boxes.append((x - radius, y - radius, x + radius, y + radius))
        if draw_face and face_on[f].any():
            r = spec.face_radius
            on = dots[f][face_on[f]]
            for x, y in on.tolist():
                cv2.circle(img, (x, y), r, FACE_COLOUR, -1)
            (x0, y0), (x1, y1) = on.min(0).tolist(), on.max(0).tolist()
            boxes.append((x0 - r, y0 - r, x1 + r, y1 + r))
        if resize is not None:
            resize(canvas, out[f], boxes)
        elif not direct:  # the frame is larger than the canvas in some direction: VACE's rule
            up = width * height > cw * ch
            out[f] = cv2.resize(canvas, (width, height),
                                interpolation=cv2.INTER_LANCZOS4 if up else cv2.INTER_AREA)
            canvas.fill(0)
    return out
