"""OpenPose skeleton drawing against the sources' numbers and plain geometry.

Expected colours, stick widths, radii and canvas sizes are written out here from the sources
(Wan2.2 ``human_visualization.py`` ``draw_aapose_new``; VACE ``dwpose/util.py`` and
``pose.py``), not read back from the module; positions are checked on the drawn pixels.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from factorportrait.models.wan_controls import openpose
from factorportrait.models.wan_controls.pose_drawing import (
    STYLES,
    _TiledAreaResize,
    draw_pose,
    pose_style,
    vace_canvas_size,
)

# The sources' tables: limbSeq (1-based, first 17 drawn) and colors.
SOURCE_LIMBS = [[2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11], [2, 12],
                [12, 13], [13, 14], [2, 1], [1, 15], [15, 17], [1, 16], [16, 18]]
SOURCE_COLORS = [[255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0],
                 [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255],
                 [0, 0, 255], [85, 0, 255], [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85]]
WAN_STICK = {(832, 480): 1, (480, 832): 1, (400, 300): 1, (1280, 720): 2, (1920, 1088): 4, (2048, 2048): 9}
VACE_CANVAS = {(832, 480): (1792, 1024), (480, 832): (1024, 1792), (1280, 720): (1792, 1024),
               (512, 512): (1024, 1024), (1024, 1024): (1024, 1024), (960, 544): (1792, 1024),
               (2048, 2048): (1024, 1024)}
W, H = 832, 480

# A frontal upper body (its right side on the image's left): continuous pixel positions.
SHOWN = {0: (416.3, 150.6), 1: (414.8, 230.2), 2: (322.4, 236.7), 5: (509.6, 233.1),
         14: (396.2, 128.4), 15: (437.5, 129.1), 16: (361.7, 139.8), 17: (472.9, 141.3)}
HIDDEN = {3: (300.5, 330.2), 6: (530.0, 331.0), 8: (360.4, 400.7), 11: (470.2, 401.9)}  # elbows, hips
DRAWN_LIMBS = {0: (1, 2), 1: (1, 5), 12: (1, 0), 13: (0, 14), 14: (14, 16), 15: (0, 15), 16: (15, 17)}
FACE_CENTRE, FACE_RADIUS = (150.5, 360.5), 55.0  # a ring of 68 dots, away from the body


def upper_body(scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    body = np.full((18, 2), np.nan)  # positions of never-seen points stay NaN: invisible
    for i, p in {**SHOWN, **HIDDEN}.items():
        body[i] = p
    visible = np.zeros(18, bool)
    visible[list(SHOWN)] = True
    return body * scale, visible


def face_ring() -> np.ndarray:
    t = np.arange(68) * 2 * math.pi / 68
    return np.stack([FACE_CENTRE[0] + FACE_RADIUS * np.cos(t), FACE_CENTRE[1] + FACE_RADIUS * np.sin(t)], -1)


def seen_colour(style: str, rgb) -> np.ndarray:
    """A source triplet as the style's model saw it: VACE reverses the channels."""
    return np.array(rgb[::-1] if style == "dwpose" else rgb)


def limb_colour(style: str, i: int) -> np.ndarray:
    return seen_colour(style, [c * 3 // 5 for c in SOURCE_COLORS[i]])  # int(c * 0.6), in integers


def out_per_canvas(style: str, w: int, h: int) -> float:
    """Frame pixels per drawing-canvas pixel."""
    return 1.0 if style == "wan_animate" else h / VACE_CANVAS[(w, h)][1]


def sizes(style: str, w: int, h: int) -> tuple[float, float]:
    """(limb half-width, joint radius) in frame pixels."""
    if style == "wan_animate":
        return WAN_STICK[(w, h)], WAN_STICK[(w, h)]
    return 4 * out_per_canvas(style, w, h), 4 * out_per_canvas(style, w, h)


def pixel(p) -> tuple[int, int]:
    """(row, column) of the pixel holding continuous point ``p``."""
    return math.floor(p[1]), math.floor(p[0])


def centres(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)


def distance_to_segment(h: int, w: int, a, b) -> np.ndarray:
    x, y = centres(h, w)
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    t = np.clip(((x - a[0]) * d[0] + (y - a[1]) * d[1]) / max(d @ d, 1e-12), 0, 1)
    return np.hypot(x - a[0] - t * d[0], y - a[1] - t * d[1])


def joint_centroid(img: np.ndarray, p, colour, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Centroid of the pixels within ``window`` of ``p`` that hold ``colour`` (+-2), and those pixels."""
    r0, c0 = pixel(p)
    patch = img[max(r0 - window, 0):r0 + window + 1, max(c0 - window, 0):c0 + window + 1].astype(int)
    rows, cols = np.nonzero((np.abs(patch - colour) <= 2).all(-1))
    pts = np.stack([cols + max(c0 - window, 0) + 0.5, rows + max(r0 - window, 0) + 0.5], -1)
    return pts.mean(0) if len(pts) else np.full(2, np.nan), pts


def draw_one(style: str, w: int = W, h: int = H, scale: float = 1.0, face: bool = False) -> np.ndarray:
    body, visible = upper_body(scale)
    pts = face_ring() if face else None
    return draw_pose(body[None], visible[None], None if pts is None else pts[None], None,
                     width=w, height=h, style=style)[0]


def test_layout_is_the_sources_openpose_layout():
    assert openpose.BODY_KEYPOINTS[:5] == ("Nose", "Neck", "RShoulder", "RElbow", "RWrist")
    assert openpose.BODY_KEYPOINTS[14:] == ("REye", "LEye", "REar", "LEar")
    assert openpose.NUM_BODY_KEYPOINTS == len(openpose.BODY_KEYPOINTS) == 18
    assert [list(limb) for limb in openpose.LIMBS] == [[a - 1, b - 1] for a, b in SOURCE_LIMBS]
    assert [list(c) for c in openpose.COLORS] == SOURCE_COLORS
    assert openpose.NUM_FACE_KEYPOINTS == 68


@pytest.mark.parametrize("size", sorted(WAN_STICK))
def test_wan_animate_stick_and_radius_follow_the_frame_size(size):
    spec = pose_style("wan_animate", *size)
    assert (spec.canvas_size, spec.stick, spec.joint_radius, spec.face_radius) == (size, WAN_STICK[size],
                                                                                  WAN_STICK[size], 0)
    assert not spec.reverse_channels


@pytest.mark.parametrize("size", sorted(VACE_CANVAS))
def test_dwpose_draws_on_vaces_1024_canvas(size):
    assert vace_canvas_size(*size) == VACE_CANVAS[size]
    spec = pose_style("dwpose", *size)
    assert (spec.canvas_size, spec.stick, spec.joint_radius, spec.face_radius) == (VACE_CANVAS[size], 4, 4, 3)
    assert spec.reverse_channels


@pytest.mark.parametrize("style", STYLES)
def test_limb_midpoints_have_the_limb_colour(style):
    img = draw_one(style)
    body, _ = upper_body()
    for i, (a, b) in DRAWN_LIMBS.items():
        assert (a, b) == tuple(openpose.LIMBS[i])
        mid = (body[a] + body[b]) / 2
        got = img[pixel(mid)].astype(int)
        assert np.abs(got - limb_colour(style, i)).max() <= 2, (style, i, got)


def test_rgb_as_each_model_saw_it():
    """Neck -> right shoulder is (255, 0, 0) x 0.6 in the sources: red for Wan-Animate (RGB
    canvas), blue for VACE (its canvas is reversed before the RGB video is written)."""
    body, _ = upper_body()
    mid = pixel((body[1] + body[2]) / 2)
    assert draw_one("wan_animate")[mid].tolist() == [153, 0, 0]
    assert np.abs(draw_one("dwpose")[mid].astype(int) - [0, 0, 153]).max() <= 2


@pytest.mark.parametrize("style", STYLES)
def test_joints_are_circles_centred_on_the_points(style):
    img = draw_one(style)
    _, radius = sizes(style, W, H)
    for j, p in SHOWN.items():
        centroid, pts = joint_centroid(img, p, seen_colour(style, SOURCE_COLORS[j]), window=int(radius) + 4)
        assert len(pts), (style, j)
        assert np.hypot(*(centroid - p)) <= 1.0, (style, j, centroid, p)
        assert np.hypot(*(pts - p).T).max() <= radius + 1.5, (style, j)  # the radius


@pytest.mark.parametrize("style", STYLES)
def test_nothing_is_drawn_for_invisible_points_or_limbs(style):
    img = draw_one(style)
    body, _ = upper_body()
    for j, p in HIDDEN.items():
        r, c = pixel(p)
        assert not img[r - 8:r + 9, c - 8:c + 9].any(), (style, j)
    # limbs with one hidden end: shoulder -> elbow, neck -> hip (past the shown end's own marks)
    for a, b in ((2, 3), (5, 6), (1, 8), (1, 11)):
        for t in np.linspace(0.3, 1.0, 15):
            assert not img[pixel(body[a] + t * (body[b] - body[a]))].any(), (style, a, b, t)


@pytest.mark.parametrize("style", STYLES)
def test_background_is_black_away_from_the_skeleton(style):
    img = draw_one(style, face=True)
    body, _ = upper_body()
    half, radius = sizes(style, W, H)
    margin = 1.0 + 1.5 * out_per_canvas(style, W, H)
    near = np.zeros((H, W), bool)
    for a, b in DRAWN_LIMBS.values():
        near |= distance_to_segment(H, W, body[a], body[b]) <= half + margin
    for p in SHOWN.values():
        near |= distance_to_segment(H, W, p, p) <= radius + margin
    if style == "dwpose":
        for p in face_ring():
            near |= distance_to_segment(H, W, p, p) <= 3 * out_per_canvas(style, W, H) + margin
    assert not img[~near].any()
    assert img[near].any(-1).mean() > 0.3  # and the skeleton is there


def test_dwpose_draws_white_face_dots_at_the_face_points():
    img = draw_one("dwpose", face=True)
    grey = img.min(-1).astype(float)
    for p in face_ring():
        r, c = pixel(p)
        patch = grey[r - 2:r + 3, c - 2:c + 3]
        assert patch.max() == 255, p  # a fully covered pixel is pure white
        x, y = centres(5, 5)
        centroid = np.array([(x * patch).sum(), (y * patch).sum()]) / patch.sum() + [c - 2, r - 2]
        assert np.hypot(*(centroid - p)) <= 1.0, (p, centroid)
    x, y = (int(v) for v in FACE_CENTRE)
    face_area = img[y - 70:y + 70, x - 70:x + 70]
    assert (face_area.max(-1) == face_area.min(-1)).all()  # white over black: grey, never coloured


def test_dwpose_face_dots_have_radius_3_on_its_canvas():
    """At 1024 x 1024 the frame is VACE's canvas: a dot is a cv2 disc of radius 3, pure white."""
    face = np.array([[300.5, 900.5]] * 68)
    img = draw_pose(np.zeros((1, 18, 2)), np.zeros((1, 18), bool), face[None], None,
                    width=1024, height=1024, style="dwpose")[0]
    assert {tuple(v) for v in img.reshape(-1, 3).tolist()} == {(0, 0, 0), (255, 255, 255)}
    rows, cols = np.nonzero(img.min(-1) == 255)
    assert cols.max() - cols.min() == rows.max() - rows.min() == 6  # 2 x 3 + 1 pixels across
    assert (cols.min() + cols.max()) / 2 == 300 and (rows.min() + rows.max()) / 2 == 900


def test_wan_animate_ignores_face_points():
    assert np.array_equal(draw_one("wan_animate", face=True), draw_one("wan_animate"))


def horizontal_limb(style: str, w: int, h: int) -> np.ndarray:
    """Neck and right shoulder on one row (the limb runs along x), the rest hidden; the image."""
    body = np.zeros((18, 2))
    body[1] = (w / 2 + 0.25, h / 2 + 0.5)
    body[2] = (w / 2 - 0.3 * w + 0.25, h / 2 + 0.5)
    visible = np.zeros(18, bool)
    visible[[1, 2]] = True
    return draw_pose(body[None], visible[None], width=w, height=h, style=style)[0]


@pytest.mark.parametrize("size", [(832, 480), (1280, 720), (1920, 1088), (400, 300)])
def test_wan_animate_stick_width_scales_with_the_frame(size):
    w, h = size
    img = horizontal_limb("wan_animate", w, h)
    column = img[:, int(w / 2 - 0.15 * w)]  # the limb's middle
    assert column.any(-1).sum() == 2 * WAN_STICK[size] + 1
    assert (column[column.any(-1)] == [153, 0, 0]).all()
    joint_row = np.nonzero((img[int(h / 2)] == [255, 85, 0]).all(-1))[0]  # the neck joint
    assert joint_row.max() - joint_row.min() == 2 * WAN_STICK[size]


@pytest.mark.parametrize("size", [(1024, 1024), (512, 512), (832, 480), (480, 832), (960, 544)])
def test_dwpose_stick_width_scales_from_its_canvas(size):
    """Area resampling keeps the limb's ink: its width times frame pixels per canvas pixel."""
    w, h = size
    img = horizontal_limb("dwpose", w, h)
    column = img[:, int(w / 2 - 0.15 * w)]  # the limb's middle
    ink = column[:, 2].astype(float).sum() / 153  # blue: the reversed (255, 0, 0) x 0.6
    assert ink == pytest.approx(9 * out_per_canvas("dwpose", w, h), abs=0.1)
    assert not column[:, :2].any()


def test_frames_are_drawn_independently():
    """Nothing of one frame shows in the next (the dwpose canvas is reused between frames)."""
    body, visible = upper_body()
    shifted = body + [60.0, -30.0]
    vis = np.stack([visible, np.zeros(18, bool), visible])
    for style in STYLES:
        out = draw_pose(np.stack([body, body, shifted]), vis, width=W, height=H, style=style)
        assert np.array_equal(out[0], draw_one(style)), style
        assert not out[1].any(), style
        assert out[0][:, :370].any() and not out[2][:, :370].any(), style  # frame 0's right shoulder
    out = draw_pose(np.stack([body, shifted]), vis[[0, 2]], width=W, height=H, style="wan_animate")
    assert np.array_equal(out[1][:-30, 60:], out[0][30:, :-60])  # whole pixels: the same picture, moved


def star(angle0: float) -> tuple[np.ndarray, np.ndarray]:
    """Five long limbs out of the neck (to both shoulders, both hips and the nose)."""
    body = np.zeros((18, 2))
    body[1] = (416.3, 240.6)
    for k, j in enumerate((2, 5, 8, 11, 0)):
        t = math.radians(angle0 + 72 * k)
        body[j] = body[1] + (200 + 7 * k) * np.array([math.cos(t), math.sin(t)])
    visible = np.zeros(18, bool)
    visible[[1, 2, 5, 8, 11, 0]] = True
    return body, visible


def test_long_dwpose_limbs_are_whole_at_any_angle():
    """The dwpose canvas is resized only where something was drawn: nothing may be cut off.
    (Sampled on the middle half of each limb: the sources' ellipses taper towards the ends and
    their angle is truncated to whole degrees, so the ends stray from the exact line.)"""
    bodies, vis = zip(*(star(a) for a in (0.0, 13.0, 31.0, 47.0, 66.0)))
    out = draw_pose(np.stack(bodies), np.stack(vis), width=W, height=H, style="dwpose")
    for img, body in zip(out, bodies):
        for i, (a, b) in ((0, (1, 2)), (1, (1, 5)), (6, (1, 8)), (9, (1, 11)), (12, (1, 0))):
            want = limb_colour("dwpose", i)
            for t in np.linspace(0.25, 0.75, 60):
                got = img[pixel(body[a] + t * (body[b] - body[a]))].astype(int)
                assert got.max() >= 0.6 * want.max(), (i, t, got)  # mostly covered
                assert np.abs(got * want.max() - want * got.max()).max() <= 3 * want.max(), (i, t, got)  # its hue


@pytest.mark.parametrize("style", STYLES)
def test_each_frame_is_its_own_drawing(style):
    """Alternating poses: every frame as if drawn alone (nothing carried over between frames)."""
    (a, va), (b, vb) = star(0.0), star(36.0)
    face = face_ring()
    faces = np.stack([face, face + 300, face, face + 300])
    out = draw_pose(np.stack([a, b, a, b]), np.stack([va, vb, va, vb]), faces, None, width=W, height=H, style=style)
    alone = [draw_pose(p[None], v[None], f[None], None, width=W, height=H, style=style)[0]
             for p, v, f in ((a, va, face), (b, vb, face + 300))]
    for k in range(4):
        assert np.array_equal(out[k], alone[k % 2]), (style, k)


@pytest.mark.parametrize("style", STYLES)
def test_points_off_the_canvas(style):
    body, visible = upper_body()
    body[0] = (-40.0, -60.0)  # nose above-left of the frame: the neck-nose limb leaves the frame
    body[5] = (1e9, -1e12)  # absurdly far: clamped, no overflow
    img = draw_pose(body[None], visible[None], width=W, height=H, style=style)[0]
    assert img.shape == (H, W, 3)
    neck = body[1]
    towards_nose = neck + 0.5 * (body[0] - neck)
    assert np.abs(img[pixel(towards_nose)].astype(int) - limb_colour(style, 12)).max() <= 2
    centroid, _ = joint_centroid(img, SHOWN[1], seen_colour(style, SOURCE_COLORS[1]), window=8)
    assert np.hypot(*(centroid - SHOWN[1])) <= 1.0


@pytest.mark.parametrize("style", STYLES)
def test_positions_must_be_finite_where_visible(style):
    body, visible = upper_body()
    reference = draw_pose(body[None], visible[None], width=W, height=H, style=style)
    moved = body.copy()
    moved[list(HIDDEN)] = np.inf  # invisible points may hold anything
    assert np.array_equal(draw_pose(moved[None], visible[None], width=W, height=H, style=style), reference)
    for bad in (np.nan, np.inf):
        broken = body.copy()
        broken[2, 0] = bad
        with pytest.raises(ValueError, match="body"):
            draw_pose(broken[None], visible[None], width=W, height=H, style=style)
    face = face_ring()
    face[7] = np.nan
    fvis = np.ones(68, bool)
    with pytest.raises(ValueError, match="face"):
        draw_pose(body[None], visible[None], face[None], fvis[None], width=W, height=H, style=style)
    fvis[7] = False
    draw_pose(body[None], visible[None], face[None], fvis[None], width=W, height=H, style=style)


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("size", [(832, 480), (64, 48), (2048, 2048), (1008, 1100)])
def test_output_shape_and_type(style, size):
    w, h = size
    body, visible = upper_body(min(w / W, h / H))
    b = torch.from_numpy(np.nan_to_num(np.stack([body, body]))).float()
    v = torch.from_numpy(np.stack([visible, visible]))
    face = torch.from_numpy(face_ring())[None].expand(2, 68, 2)
    out = draw_pose(b, v, face, None, width=w, height=h, style=style)
    assert out.shape == (2, h, w, 3) and out.dtype == np.uint8 and out.any()
    empty = draw_pose(np.zeros((0, 18, 2)), np.zeros((0, 18), bool), width=w, height=h, style=style)
    assert empty.shape == (0, h, w, 3)


def test_large_frames_upsample_the_dwpose_canvas():
    img = draw_one("dwpose", 2048, 2048, scale=2048 / 480)  # canvas 1024: LANCZOS4 up, as VACE
    body, _ = upper_body(2048 / 480)
    for i, (a, b) in DRAWN_LIMBS.items():
        got = img[pixel((body[a] + body[b]) / 2)].astype(int)
        assert np.abs(got - limb_colour("dwpose", i)).max() <= 2, (i, got)


def test_bad_arguments_raise():
    body, visible = upper_body()
    with pytest.raises(ValueError, match="style"):
        draw_pose(body[None], visible[None], width=W, height=H, style="openpose")
    with pytest.raises(ValueError, match="width"):
        draw_pose(body[None], visible[None], width=0, height=H)
    with pytest.raises(ValueError, match="body"):
        draw_pose(body[None, :17], visible[None, :17], width=W, height=H)
    with pytest.raises(ValueError, match="body_visible"):
        draw_pose(body[None], visible[None, :17], width=W, height=H)
    with pytest.raises(ValueError, match="face"):
        draw_pose(body[None], visible[None], face_ring()[None, :60], None, width=W, height=H, style="dwpose")
    with pytest.raises(ValueError, match="face"):
        draw_pose(body[None], visible[None], np.stack([face_ring()] * 2), None, width=W, height=H)


@pytest.mark.parametrize("size", [(832, 480), (480, 832), (1280, 720), (512, 512), (848, 480), (833, 479)])
def test_tiled_area_resize_is_cv2_resize(size):
    """The dwpose style resizes only the drawn tiles; that must equal resizing the whole canvas."""
    w, h = size
    cw, ch = vace_canvas_size(w, h)
    rng = np.random.default_rng(w * h)
    canvas = np.zeros((ch, cw, 3), np.uint8)
    boxes = []
    for _ in range(25):
        x, y, r = (int(v) for v in rng.integers([-20, -20, 1], [cw + 20, ch + 20, 40]))
        cv2.circle(canvas, (x, y), r, tuple(int(v) for v in rng.integers(1, 256, 3)), -1)
        boxes.append((x - r, y - r, x + r, y + r))
    expected = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
    out = np.zeros_like(expected)
    _TiledAreaResize((cw, ch), (w, h))(canvas, out, boxes)
    assert np.array_equal(out, expected)
    assert not canvas.any()  # cleared for the next frame
