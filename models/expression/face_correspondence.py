"""Where MediaPipe's 478 face-mesh points lie on anny's surface: a dense correspondence
derived by detection on renders of the template itself.

Why by detection: a detector places its points by what it learned, not by anatomy (lid
points sit inside the lid margin, the jaw contour follows the silhouette), so hand-picked
mesh vertices disagree with the detections by a few pixels, which is as much as a blink or a
raised brow moves them. Detecting on anny itself bakes the detector's placement in.

How (``build_face_correspondence``):

1. the neutral mean-shape anny is rendered, painted like a face (``render_face_images``:
   dark brows, red lips, dark mouth, eyes with iris and pupil, Lambert shading), from
   ``VIEWS``: frontal, yaw +-15 and +-30 degrees, each also at pitch +-15 degrees (15 images);
2. MediaPipe's face mesh is detected on each view (each image on its own);
3. each detected pixel is cast back onto the mesh: the rasterizer's front-most face there and
   the exact barycentrics of the detected (sub-pixel) position on that face's plane;
4. per point, the views that see its hit within ``MAX_VIEW_ANGLE`` of head-on vote: the hit
   that agrees best with the others (a weighted medoid, weights cos^2 of the viewing angle)
   and the hits within ``INLIER_MM`` of it are averaged in 3-D, and the mean is snapped to the
   nearest point of the surface (eye-contour points to the skin, not the eyeball: a blink
   moves the lids, never the eyeball).

Points seen head-on enough by fewer than ``MIN_VIEWS`` views, whose hits disagree (the face
contour, which follows the silhouette), or whose mean lies off the surface are dropped and
listed in ``FaceCorrespondence.dropped``.

The result is cached next to anny's assets as a small safetensors file (~25 KB) keyed by
the anny cache version and the MediaPipe version (``correspondence_path``); building it takes
about half a minute on two CPU cores.

Why painted: on a bald, untextured head MediaPipe barely follows the brows (a full
browInnerUp moves its brow points a tenth as far as the surface moves) or the lids; painted,
its points follow the surface with gains of 0.5 to 1. The same painted renders are the
synthetic videos of the encoder's tests, so the placement found here is the one the
detector uses on them; on real faces it is the nearest anny has to a skin texture.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..body import cache as anny_cache
from ..body.anny_model import AnnyUpperBody, load_anny
from ..errors import InputError
from ..render import rasterize as rz
from ..render.normal_maps import vertex_normals
from ..camera.paths import View, trajectory_from_channels
from .face_mesh import FACE_MESH_POINTS, detect_face_arrays, mediapipe_version

logger = logging.getLogger(__name__)
Progress = Callable[[int, int], None]

FORMAT_VERSION = 1
# (yaw, pitch) in degrees of the camera around the head centre.
VIEWS: tuple[tuple[float, float], ...] = tuple(
    (yaw, pitch) for pitch in (0.0, -15.0, 15.0) for yaw in (0.0, -15.0, 15.0, -30.0, 30.0))
RENDER_SIZE = 512
RENDER_DISTANCE = 0.6  # metres; with RENDER_FOV the face spans about half the frame
RENDER_FOV = 30.0
MAX_VIEW_ANGLE = 65.0  # degrees between a hit's face normal and the ray back to the camera
MIN_VIEWS = 2
INLIER_MM = 3.0
MAX_SPREAD_MM = 2.5  # weighted RMS distance of the inliers from their mean
MAX_SNAP_MM = 2.0  # distance of the mean from the surface
# MediaPipe's eye contours (lid margins, both eyes): snapped to the lids, never the eyeball.
EYE_CONTOUR = (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
               263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398)
IRISES = tuple(range(468, 478))


@dataclass(frozen=True)
class FaceCorrespondence:
    """Face-mesh points placed on anny's surface (``N`` of the 478).

    Attributes:
        point_index: MediaPipe index of each placed point ``[N]`` (int64, ascending).
        face_index: anny face (``model.faces`` row) holding it ``[N]`` (int64).
        vertex_index: that face's three vertices ``[N, 3]`` (int64).
        bary: barycentric weights on them ``[N, 3]`` (float32, sum 1): a point is
            ``sum_i bary[n, i] * vertices[vertex_index[n, i]]``, for any shape, face and pose.
        dropped: MediaPipe indices that could not be placed (sorted).
        spread_mm: weighted RMS distance of each point's per-view hits from its mean ``[N]``.
    """

    point_index: Tensor
    face_index: Tensor
    vertex_index: Tensor
    bary: Tensor
    dropped: tuple[int, ...]
    spread_mm: Tensor

    def gather(self, values: Tensor) -> Tensor:
        """Per-vertex values ``[..., V, C]`` (vertices, blendshapes) at the points ``[..., N, C]``."""
        corners = values[..., self.vertex_index, :]  # [..., N, 3, C]
        return (corners * self.bary.to(values)[..., None]).sum(-2)

    def tensors(self) -> dict[str, Tensor]:
        return {"point_index": self.point_index, "face_index": self.face_index, "vertex_index": self.vertex_index,
                "bary": self.bary, "dropped": torch.tensor(self.dropped, dtype=torch.long),
                "spread_mm": self.spread_mm}


def correspondence_path(cache_dir: str | os.PathLike) -> Path:
    """The cache file for the installed anny and MediaPipe versions in ``cache_dir``."""
    anny_key = anny_cache.assets_path(cache_dir).stem  # anny_upper_body_v<format>_anny<version>
    name = f"face_correspondence_v{FORMAT_VERSION}_{anny_key}_mediapipe{mediapipe_version()}.safetensors"
    return Path(cache_dir) / name


def load_face_correspondence(cache_dir: str | os.PathLike, model: AnnyUpperBody | None = None,
                             progress: Progress | None = None) -> FaceCorrespondence:
    """The correspondence cached in ``cache_dir`` (anny's cache folder), built and saved first
    when missing (about half a minute on 2 CPU cores; needs MediaPipe), reported by ``progress``
    (one call per rendered view)."""
    from safetensors.torch import load_file, save_file

    path = correspondence_path(cache_dir)
    if path.is_file():
        t = load_file(str(path))
        return FaceCorrespondence(t["point_index"], t["face_index"], t["vertex_index"], t["bary"],
                                  tuple(t["dropped"].tolist()), t["spread_mm"])
    logger.info("Placing MediaPipe's face-mesh points on anny (first use): %s", path)
    if model is None:
        model = load_anny(cache_dir)
    corr = build_face_correspondence(model, progress)
    meta = {"anny_assets": anny_cache.assets_path(cache_dir).name, "mediapipe": mediapipe_version(),
            "views": VIEWS, "render_size": RENDER_SIZE, "dropped": list(corr.dropped)}
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    save_file({k: v.contiguous() for k, v in corr.tensors().items()}, str(tmp), metadata={"meta": json.dumps(meta)})
    os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    return corr



# -- painted renders ------------------------------------------------------------------------------
# anny painted like a face (why: see the module docstring) by scalar fields on the template's
# vertices, which the surface carries along through every expression and pose, thresholded
# per pixel: dark brows, red lips, a dark mouth, white eyes with iris and pupil.
SKIN = (0.85, 0.65, 0.55)
BROW = (0.2, 0.13, 0.08)
LIPS = (0.7, 0.35, 0.35)
MOUTH = (0.25, 0.08, 0.08)
SCLERA, IRIS, PUPIL = (0.9, 0.9, 0.88), (0.35, 0.25, 0.15), (0.05, 0.05, 0.05)
BACKGROUND = (0.2, 0.25, 0.3)
LIGHT = (0.3, 0.4, 0.85)  # toward the light in the normal map's axes (up, right, toward the viewer)


def face_paint_fields(model: AnnyUpperBody) -> Tensor:
    """Per-vertex paint fields ``[V, 5]`` of the neutral template: brow and lip distances (< 1
    inside), iris depth (0..1 over each eyeball's front), eyeball and mouth-cavity masks.

    Brows: bands around anny's brow landmarks (inner -> mid -> outer, 11 to 6 mm wide); lips:
    the ellipse through the mouth corners and the outer lip centres; mouth cavity: what lies
    2 cm or more behind the mouth corners between them and does not face down (the chin).
    """
    t = model.template.double()
    mark = {n: t[model.landmark_index[i, 0]] for i, n in enumerate(model.landmark_names)
            if float(model.landmark_weight[i, 0]) == 1.0}

    def segment(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:  # distance to a segment, position on it
        ab = b - a
        s = ((t - a) @ ab / (ab @ ab)).clamp(0, 1)
        return (t - a - s[:, None] * ab).norm(dim=1), s

    brows = []
    for side in ("left", "right"):
        inner, mid, outer = (mark[f"brow_{side}_{p}"] for p in ("inner", "mid", "outer"))
        d1, s1 = segment(inner, mid)
        d2, s2 = segment(mid, outer + 0.3 * (outer - mid))
        brows.append(torch.minimum(d1 / (0.0055 - 0.001 * s1), d2 / (0.0045 - 0.0015 * s2)))
    right, left = mark["mouth_right"], mark["mouth_left"]
    centre = (right + left) / 2
    half_width = (left - right).norm() / 2 * 1.02
    dy = t[:, 1] - centre[1]
    half_height = torch.where(dy > 0, mark["lip_upper_outer"][1] - centre[1], centre[1] - mark["lip_lower_outer"][1])
    lips = ((t[:, 0] - centre[0]) / half_width).square() + (dy / half_height).square()
    lips = torch.where(t[:, 2] > centre[2] - 0.02, lips, 9.0)
    normals = vertex_normals(t[None], model.faces)[0]
    mouth = (((t[:, 0] - centre[0]).abs() < half_width) & (t[:, 2] < torch.minimum(right[2], left[2]) - 0.02)
             & (dy > -0.045) & (dy < 0.02) & (normals[:, 1] > -0.2))
    eye = _eyeball_vertices(model.faces, model.num_vertices)
    z = t[:, 2]
    front = torch.where(eye, z, -torch.inf).max()
    back = torch.where(eye, z, torch.inf).min()
    iris = torch.where(eye, (z - back) / (front - back), 0.0)
    return torch.stack([torch.minimum(*brows), lips, iris, eye.double(), mouth.double()], 1).float()


def render_face_images(model: AnnyUpperBody, vertices: Tensor, camera, width: int, height: int,
                       fields: Tensor | None = None, frames_per_chunk: int = 8) -> Tensor:
    """Painted, Lambert-shaded images ``[F, H, W, 3]`` (a ComfyUI IMAGE) of anny's world
    vertices ``[F, V, 3]`` seen by ``camera`` (1 or F frames, see ``rasterize.broadcast_frames``):
    a synthetic face video whose geometry is known exactly. ``fields``:
    :func:`face_paint_fields` (computed when None)."""
    fields = (face_paint_fields(model) if fields is None else fields).float()
    verts, k = rz.camera_space(vertices, camera, width, height)  # [F, V, 3] OpenCV camera axes
    faces = model.faces.long()
    images = []
    for f0 in range(0, len(verts), frames_per_chunk):
        chunk = verts[f0:f0 + frames_per_chunk]
        fragments = rz.rasterize(chunk, faces, k[f0:f0 + frames_per_chunk], width, height)
        # Smooth normals, turned to the normal maps' axes (x right, y up, z toward the viewer).
        normals = vertex_normals(chunk, faces).float() * torch.tensor([1.0, -1.0, -1.0])
        values = rz.interpolate(fragments, torch.cat([normals, fields.expand(len(chunk), -1, -1)], -1), faces)
        images.append(_paint(values[..., :3], values[..., 3:], fragments.mask))
    return torch.cat(images)


def face_albedo(paint: Tensor, skin=SKIN, brow=BROW, lips=LIPS, mouth=MOUTH, sclera=SCLERA, iris=IRIS,
                pupil=PUPIL) -> Tensor:
    """Unlit colours ``[..., 3]`` of interpolated paint fields ``[..., 5]``
    (:func:`face_paint_fields`): skin with brows, lips and the mouth cavity over it, eyes
    with iris and pupil. The colours are RGB triples in 0..1 (tuples or tensors ``[3]``);
    the defaults are the painted renders'."""
    def colour(c) -> Tensor:
        return torch.as_tensor(c, dtype=torch.float32)

    def over(base: Tensor, amount: Tensor, c) -> Tensor:
        amount = amount.clamp(0, 1)[..., None]
        return base * (1 - amount) + colour(c) * amount

    albedo = colour(skin).expand(*paint.shape[:-1], 3)
    albedo = over(albedo, (1 - paint[..., 0]) / 0.15, brow)
    albedo = over(albedo, (1 - paint[..., 1]) / 0.1, lips)
    albedo = over(albedo, paint[..., 4], mouth)
    eye = over(colour(sclera).expand_as(albedo), (paint[..., 2] - 0.75) / 0.05, iris)
    eye = over(eye, (paint[..., 2] - 0.93) / 0.03, pupil)
    return torch.where(paint[..., 3:4] > 0.5, eye, albedo)


def _paint(normals: Tensor, paint: Tensor, mask: Tensor) -> Tensor:
    """Colours ``[F, H, W, 3]`` from interpolated normals ``[F, H, W, 3]``, paint fields
    ``[F, H, W, 5]`` and coverage ``[F, H, W]``."""
    colour = torch.tensor
    albedo = face_albedo(paint)
    light = colour(LIGHT) / colour(LIGHT).norm()
    lambert = (normals / normals.norm(dim=-1, keepdim=True).clamp(min=1e-12) @ light).clamp(min=0)
    surface = albedo * (0.25 + 0.75 * lambert)[..., None]
    return torch.where(mask[..., None], surface, colour(BACKGROUND)).clamp(0, 1)


# -- building ------------------------------------------------------------------------------------

@dataclass
class _Hits:
    """Back-projected detections of ``P`` views: 3-D points on the neutral mesh ``[P, 478, 3]``,
    cosine of the viewing angle ``[P, 478]`` (0 where there is no hit) and the face hit ``[P, 478]``."""

    points: Tensor
    facing: Tensor
    face: Tensor


def build_face_correspondence(model: AnnyUpperBody, progress: Progress | None = None,
                              views: tuple[tuple[float, float], ...] = VIEWS,
                              size: int = RENDER_SIZE) -> FaceCorrespondence:
    """Detect MediaPipe's face mesh on painted renders of the mean-shape ``model``, place its
    points on the surface and measure how they move with each face action (see the module
    docstring). ``progress(done, total)`` after each rendered image."""
    with torch.inference_mode(False), torch.no_grad():
        neutral = model(model.neutral_params(1)).double()  # [1, V, 3], head centre at the origin
        faces = model.faces.long()
        cameras = _cameras(views)
        fields = face_paint_fields(model)
        hits = _detect_and_cast(model, neutral, cameras, size, fields, progress)
        if not bool((hits.face >= 0).any()):
            raise InputError("detector", "MediaPipe found no face on the renders of anny: the installed "
                                         f"MediaPipe ({mediapipe_version()}) does not behave as expected.")
        return _combine(hits, neutral[0], faces, _eyeball_vertices(faces, model.num_vertices)[faces[:, 0]])


def place_by_frontal_view(model: AnnyUpperBody, indices: list[int], size: int = RENDER_SIZE) -> tuple[Tensor, Tensor]:
    """Where MediaPipe puts face-mesh points ``indices`` on a frontal render of the painted
    mean-shape ``model``: each as a template face's vertices ``[N, 3]`` (int64) and
    barycentrics on them ``[N, 3]`` (float32).

    For the points the correspondence drops because their hits disagree across views (the
    face contour, which follows each view's silhouette): one view's placement is the frontal
    silhouette, as a detector draws it on a face seen head-on. A point detected just off the
    silhouette goes to the nearest vertex the camera sees.

    Raises:
        InputError: MediaPipe found no face.
    """
    with torch.inference_mode(False), torch.no_grad():
        neutral = model(model.neutral_params(1)).double()
        cameras = _cameras(((0.0, 0.0),))
        images = render_face_images(model, neutral.float(), cameras, size, size, face_paint_fields(model))
        (detected,), _several = detect_face_arrays(images, video=False, max_faces=1)
        if detected is None:
            raise InputError("detector", f"MediaPipe ({mediapipe_version()}) found no face on the frontal render "
                                         "of anny.")
        hits = _back_project(neutral, model.faces.long(), cameras, [detected], size)
        faces = model.faces.long()
        corners = faces[hits.face[0, indices].clamp(min=0)]  # [N, 3]
        a, b, c = (neutral[0][corners[:, i]] for i in range(3))
        bary = _barycentric(hits.points[0, indices], a, b, c)
        missed = (hits.face[0, indices] < 0).nonzero()[:, 0]
        if len(missed):
            seen = _seen_vertices(neutral, faces, cameras, size)
            verts, k = rz.camera_space(neutral, cameras, size, size)
            uv = (verts[0] @ k[0].double().T)[:, :2] / verts[0, :, 2:]
            target = torch.from_numpy(detected[[indices[i] for i in missed.tolist()]]).double()
            dist = torch.cdist(target, uv[seen])
            nearest = seen.nonzero()[:, 0][dist.argmin(1)]
            corners[missed] = nearest[:, None].expand(-1, 3)
            bary[missed] = torch.tensor([1.0, 0.0, 0.0], dtype=bary.dtype)
    return corners, bary.float()


def _seen_vertices(vertices: Tensor, faces: Tensor, cameras, size: int) -> Tensor:
    """Vertices ``[V]`` bool that a camera of one frame sees (within 5 mm of the z-buffer)."""
    verts, k = rz.camera_space(vertices, cameras, size, size)
    depth = rz.rasterize(verts.float(), faces, k, size, size).depth[0]
    uv = (verts[0] @ k[0].double().T)[:, :2] / verts[0, :, 2:]
    col, row = uv[:, 0].floor().long(), uv[:, 1].floor().long()
    inside = (col >= 0) & (col < size) & (row >= 0) & (row < size)
    z = depth[row.clamp(0, size - 1), col.clamp(0, size - 1)].double()
    return inside & (z > 0) & (verts[0, :, 2] <= z + 0.005)


def _barycentric(p: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Barycentric coordinates ``[N, 3]`` of points ``p`` in triangles ``(a, b, c)`` (each ``[N, 3]``),
    of the point's projection onto the triangle's plane."""
    v0, v1, v2 = b - a, c - a, p - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    den = d00 * d11 - d01 * d01
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    return torch.stack([1 - v - w, v, w], 1)


def _cameras(views: tuple[tuple[float, float], ...]):
    """One camera per (yaw, pitch) view around the head centre."""
    return trajectory_from_channels(torch.tensor(
        [View(yaw=y, pitch=p, distance=RENDER_DISTANCE, fov=RENDER_FOV).vector() for y, p in views]))


def _detect_and_cast(model: AnnyUpperBody, vertices: Tensor, cameras, size: int, fields: Tensor,
                     progress: Progress | None) -> _Hits:
    """Render ``vertices`` ``[P or 1, V, 3]`` seen by ``cameras`` (1 or P frames), detect the face
    mesh on each image and cast the detections back onto the mesh."""
    images = render_face_images(model, vertices.float(), cameras, size, size, fields)
    detections, _several = detect_face_arrays(images, video=False, max_faces=1, progress=progress)
    return _back_project(vertices, model.faces.long(), cameras, detections, size)


def _back_project(vertices: Tensor, faces: Tensor, cameras, detections: list[np.ndarray | None],
                  size: int) -> _Hits:
    """Cast each image's detected pixels back onto its mesh (``vertices [P or 1, V, 3]`` world,
    ``cameras`` of P or 1 frames)."""
    num_views = len(detections)
    verts, k = rz.camera_space(vertices, cameras, size, size)  # [P, V, 3]
    fragments = rz.rasterize(verts, faces, k, size, size)
    planes = rz.face_ray_planes(verts, faces, k).view(9, num_views, -1)  # [9, P, M]
    points = torch.zeros(num_views, FACE_MESH_POINTS, 3, dtype=torch.float64)
    facing = torch.zeros(num_views, FACE_MESH_POINTS, dtype=torch.float64)
    face = torch.full((num_views, FACE_MESH_POINTS), -1, dtype=torch.long)
    for view, detected in enumerate(detections):
        if detected is None:
            continue
        xy = torch.from_numpy(detected).double()
        col = xy[:, 0].floor().long().clamp(0, size - 1)
        row = xy[:, 1].floor().long().clamp(0, size - 1)
        fid = fragments.face_id[view, row, col]
        hit = fid >= 0
        fid = fid.clamp(min=0)
        # Exact barycentrics of the sub-pixel position on the hit face's plane; near a face's
        # edge they extrapolate a little (fine), on grazing faces a lot: keep the pixel's then.
        q = planes[:, view, fid].T.reshape(-1, 3, 3)
        lam = (q @ torch.cat([xy, torch.ones(len(xy), 1, dtype=xy.dtype)], 1)[..., None])[..., 0]
        bary = lam / lam.sum(1, keepdim=True)
        pixel_bary = fragments.bary[view, row, col].double()
        bary = torch.where((bary > -0.25).all(1, keepdim=True), bary, pixel_bary)
        corners = vertices[min(view, len(vertices) - 1)][faces[fid]]  # [478, 3, 3]
        x = (bary[..., None] * corners).sum(1)
        normal = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        to_camera = cameras.centers[min(view, cameras.num_frames - 1)] - x
        cos = (normal * to_camera).sum(1) / (normal.norm(dim=1) * to_camera.norm(dim=1)).clamp(min=1e-12)
        points[view], facing[view], face[view] = x, torch.where(hit, cos.clamp(min=0), 0.0), torch.where(hit, fid, -1)
    return _Hits(points, facing, face)


def _eyeball_vertices(faces: Tensor, num_vertices: int) -> Tensor:
    """Vertices of the eyeballs ``[V]`` bool: the mesh's small connected components (anny's
    visible eyeball fronts are separate pieces; the skin, lids and mouth are one).

    Components by min-label propagation over the faces until nothing changes (hand-written:
    scipy is not a dependency; a few hundred cheap passes at most, the mesh's diameter).
    """
    faces = faces.long()
    label = torch.arange(num_vertices)
    while True:
        smallest = label[faces].amin(1, keepdim=True).expand(-1, 3)  # per face, its corners' minimum
        new = label.scatter_reduce(0, faces.reshape(-1), smallest.reshape(-1), "amin")
        if torch.equal(new, label):
            break
        label = new
    sizes = torch.bincount(label, minlength=num_vertices)
    return sizes[label] < 0.05 * num_vertices


def _combine(hits: _Hits, vertices: Tensor, faces: Tensor, eyeball: Tensor) -> FaceCorrespondence:
    """Per point: the weighted medoid of the views' hits, the mean of its inliers, snapped to
    the surface; points without enough agreeing views are dropped."""
    min_cos = float(np.cos(np.radians(MAX_VIEW_ANGLE)))
    weight = torch.where(hits.facing >= min_cos, hits.facing.square(), 0.0)  # [P, 478]
    x = hits.points.transpose(0, 1)  # [478, P, 3]
    w = weight.T  # [478, P]
    dist = torch.cdist(x, x) * 1000  # [478, P, P] mm
    cost = (dist.clamp(max=2 * INLIER_MM) * w[:, None, :]).sum(-1)
    cost = torch.where(w > 0, cost, float("inf"))
    medoid = x[torch.arange(len(x)), cost.argmin(1)]  # [478, 3]
    inlier = w * ((x - medoid[:, None]).norm(dim=-1) * 1000 <= INLIER_MM)
    total = inlier.sum(1).clamp(min=1e-12)
    mean = (inlier[..., None] * x).sum(1) / total[:, None]
    spread = (((x - mean[:, None]).norm(dim=-1) * 1000).square() * inlier).sum(1).div(total).sqrt()
    views = (inlier > 0).sum(1)

    point_ids = torch.arange(FACE_MESH_POINTS)
    is_eye = torch.zeros(FACE_MESH_POINTS, dtype=torch.bool)
    is_eye[list(EYE_CONTOUR)] = True
    face, bary, gap = _snap(mean, vertices, faces, allowed=~eyeball, restrict=is_eye)
    # Lid points detected on the eyeball were moved to the lid: any distance is fine for them.
    on_surface = (gap * 1000 <= MAX_SNAP_MM) | is_eye
    keep = (views >= MIN_VIEWS) & (spread <= MAX_SPREAD_MM) & on_surface
    kept = point_ids[keep]
    return FaceCorrespondence(kept, face[keep], faces[face[keep]], bary[keep].float(),
                              tuple(point_ids[~keep].tolist()), spread[keep].float())


def _snap(points: Tensor, vertices: Tensor, faces: Tensor, allowed: Tensor, restrict: Tensor,
          steps: int = 6, candidates: int = 48) -> tuple[Tensor, Tensor, Tensor]:
    """The nearest surface point of each point ``[N, 3]``: ``(face [N], bary [N, 3], distance [N])``.

    Nearest among a dense sampling (a barycentric grid of ``steps`` divisions, ~0.3 mm apart on
    anny's face) of the ``candidates`` faces with the nearest centroids; points flagged in
    ``restrict`` only among ``allowed`` faces.
    """
    grid = torch.tensor([(i, j, steps - i - j) for i in range(steps + 1) for j in range(steps + 1 - i)],
                        dtype=torch.float64) / steps  # [S, 3]
    corners = vertices[faces]  # [M, 3, 3]
    gap = torch.cdist(points, corners.mean(1))  # [N, M]
    gap = torch.where(restrict[:, None] & ~allowed[None], float("inf"), gap)
    near = gap.topk(candidates, dim=1, largest=False).indices  # [N, C]
    samples = torch.einsum("sc,ncd->nsd", grid, corners[near.reshape(-1)]).reshape(len(points), -1, 3)  # [N, C*S, 3]
    dist = (samples - points[:, None]).norm(dim=-1)
    best = dist.argmin(1)
    face = near.gather(1, (best // len(grid))[:, None])[:, 0]
    return face, grid[best % len(grid)], dist.gather(1, best[:, None])[:, 0]
