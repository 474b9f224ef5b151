"""RGB frames and normal maps of an avatar.

RGB: anny painted like a face by per-vertex fields the surface carries through every
expression and pose (:func:`models.expression.face_correspondence.face_paint_fields`: brows,
lips, mouth cavity, eyes with iris and pupil, coloured by :func:`face_albedo` with the
identity's colours), plus clothing below a neckline on the torso and shoulders; lit by the
identity's key light and ambient term, fixed in the WORLD (Lambert on the interpolated world
normals), and composited over the room (:mod:`.background`) by the rasterizer's coverage.

Normal maps: exactly what the "Render Normal Maps" node makes of the same body and camera
(:func:`models.tracking.rendering.render_track_normals`): the same function
(:func:`models.render.normal_maps.render_normal_maps`), the same template faces, and the
vertices evaluated ``FRAMES_PER_CHUNK`` frames at a time as its body track evaluates them
(:func:`avatar_vertices`), so the bytes match, not just the picture.
"""
from __future__ import annotations

import weakref

import torch

from ...models.body.anny_model import AnnyUpperBody
from ...models.body.upper_body import UpperBodyParams
from ...models.camera.trajectory import CameraTrajectory
from ...models.expression.face_correspondence import face_albedo, face_paint_fields
from ...models.render import rasterize as rz
from ...models.render.normal_maps import render_normal_maps, vertex_normals
from ...models.tracking.rendering import FRAMES_PER_CHUNK
from .appearance import Appearance

NECKLINE_EDGE = 0.004  # metres over which the clothing's edge blends into the skin
NECK_FRONT = -0.03  # z (metres) from which the neckline dips: the front half of the neck
NECK_HALF_WIDTH = 0.065  # |x| (metres) past which the shoulders begin
SHOULDER_LIFT = 0.06

_FIELDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def paint_fields(model: AnnyUpperBody) -> torch.Tensor:
    """:func:`face_paint_fields` of ``model`` ``[V, 5]``, computed once per model (a third
    of a second: too slow to repeat per clip)."""
    if model not in _FIELDS:
        with torch.no_grad():
            _FIELDS[model] = face_paint_fields(model)
    return _FIELDS[model]


def clothing_field(model: AnnyUpperBody, appearance: Appearance) -> torch.Tensor:
    """Per-vertex clothing amount ``[V]`` (> 1 covered, < 0 skin, a ramp of
    ``NECKLINE_EDGE`` between): below the neckline of the neutral template (head centre at
    the origin), which sits at ``collar_height`` around the neck, dips by ``neckline_depth``
    at the front centre (a Gaussian of ``neckline_width``) and rises over the shoulders."""
    t = model.template.double()
    t = t - model.head_center(t)
    x, y, z = t.unbind(1)
    front = torch.sigmoid((z - NECK_FRONT) / 0.015)
    # Beyond the neck the neckline rises above the shoulders (nothing of the head is that
    # low out there), so the shoulder tops are always clothed.
    beyond_neck = torch.sigmoid((x.abs() - NECK_HALF_WIDTH) / 0.006)
    neckline = (appearance.collar_height + SHOULDER_LIFT * beyond_neck - appearance.neckline_depth * front
                * torch.exp(-0.5 * (x / appearance.neckline_width).square()))
    return ((neckline - y) / NECKLINE_EDGE).float()


def avatar_params(model: AnnyUpperBody, appearance: Appearance, face: torch.Tensor,
                  pose: dict[str, torch.Tensor]) -> UpperBodyParams:
    """Parameters of ``F`` frames: the identity's shape, ARKit weights ``face [F, 52]`` and
    ``pose`` ``{"head", "neck", "torso"} -> [F, 3]`` axis-angle; clavicles, global rotation
    and translation zero (the head centre at the origin)."""
    params = model.neutral_params(face.shape[0])
    params.shape = appearance.shape_tensor(model.template)
    params.face = face.to(model.template)
    for group in ("head", "neck", "torso"):
        setattr(params, group, pose[group].to(model.template))
    return params


def avatar_vertices(model: AnnyUpperBody, params: UpperBodyParams) -> torch.Tensor:
    """World vertices ``[F, V, 3]``, evaluated as the body track of "Render Normal Maps"
    evaluates them (``FRAMES_PER_CHUNK`` frames at a time, without gradients)."""
    chunks = []
    with torch.no_grad():
        for f0 in range(0, params.frames, FRAMES_PER_CHUNK):
            chunks.append(model(params.select(list(range(f0, min(f0 + FRAMES_PER_CHUNK, params.frames))))))
    return torch.cat(chunks)


def render_normals(model: AnnyUpperBody, vertices: torch.Tensor, camera: CameraTrajectory, width: int,
                   height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normal maps ``[F, H, W, 3]`` and masks ``[F, H, W]`` (float32) as the node renders them."""
    return render_normal_maps(vertices, model.faces, camera, width, height, backend="torch")


def render_avatar(model: AnnyUpperBody, vertices: torch.Tensor, camera: CameraTrajectory, width: int, height: int,
                  appearance: Appearance, background: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The painted, lit avatar ``[F, H, W, 3]`` (float32, 0..1) over ``background``
    ``[F, H, W, 3]`` (black when None), and its coverage ``[F, H, W]`` (bool).

    Args:
        vertices: world vertices ``[F, V, 3]`` (:func:`avatar_vertices`).
        camera: ``F`` frames or 1.
        appearance: the colours and the light.
    """
    faces = model.faces.long()
    verts, k = rz.camera_space(vertices, camera, width, height)  # [F, V, 3] OpenCV camera axes
    num_frames, num_verts = verts.shape[:2]
    planes = rz.face_ray_planes(verts, faces, k)
    # Only the covered pixels are shaded: a quarter of a portrait frame.
    covered, pixel, face = rz.rasterize_pixels(verts, faces, k, width, height, planes=planes)
    bary, corners = _barycentrics(planes, pixel, face, faces, num_verts, width, height)
    # World normals: the light is fixed in the world, whatever the camera does.
    world = vertices.float().expand(num_frames, -1, -1)
    fields = torch.cat([paint_fields(model), clothing_field(model, appearance)[:, None]], 1)  # [V, 6]
    attributes = torch.cat([vertex_normals(world, faces), fields.expand(num_frames, -1, -1)], -1).reshape(-1, 9)
    values = (attributes.index_select(0, corners.reshape(-1)).view(-1, 3, 9) * bary[..., None]).sum(1)  # [N, 9]
    albedo = face_albedo(values[:, 3:8], skin=appearance.skin, brow=appearance.brow, lips=appearance.lips,
                         iris=appearance.iris)
    albedo = torch.lerp(albedo, torch.tensor(appearance.clothing), values[:, 8:9].clamp(0, 1))
    n = values[:, :3]
    lambert = (n @ torch.tensor(appearance.light_direction) / n.norm(dim=-1).clamp(min=1e-12)).clamp(min=0)
    light = (appearance.ambient + appearance.light_intensity * lambert)[:, None] * torch.tensor(appearance.light_colour)
    image = (torch.zeros(num_frames, height, width, 3) if background is None
             else background.float().expand(num_frames, -1, -1, -1).clone())
    image.view(-1, 3).index_copy_(0, pixel, (albedo * light).clamp(0, 1))
    return image, covered


def _barycentrics(planes: torch.Tensor, pixel: torch.Tensor, face: torch.Tensor, faces: torch.Tensor,
                  num_verts: int, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Perspective-correct barycentrics ``[N, 3]`` (float32) of the flat pixel indices
    ``pixel [N]`` in their faces ``face [N]`` (``f * M + m``, as ``rasterize_pixels`` gives
    them), and the faces' corners as rows of the frames' stacked vertices ``[N, 3]``:
    ``lam = Q (u, v, 1)`` with the faces' :func:`rasterize.face_ray_planes` ``Q``."""
    p = pixel.double()
    row = torch.div(p, width, rounding_mode="floor")
    u = p - row * width + 0.5
    v = row - torch.div(row, height, rounding_mode="floor") * height + 0.5
    q = planes.index_select(1, face)  # [9, N]
    lam = torch.stack([q[3 * i] * u + q[3 * i + 1] * v + q[3 * i + 2] for i in range(3)], 1)
    bary = (lam / lam.sum(1, keepdim=True)).float()
    num_faces = faces.shape[0]
    frame = torch.div(face, num_faces, rounding_mode="floor")
    corners = faces.index_select(0, face - frame * num_faces) + (frame * num_verts)[:, None]
    return bary, corners
