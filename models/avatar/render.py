"""Render an avatar under any pose, expression and camera: frames and the person's matte.

Per chunk of frames: the body model's forward pass for the pose and expression; the layer
moved by the blend of its joints' maps from the photo's pose to the new one; one rasterizer
call for body and layer; per pixel, the photo looked up where the photo's camera saw the
surface point (and its mirror, and the filled colour, weighted as ``surface.py`` set them);
composited over the background plane by the photo's matte (``background.py``).

Memory is bounded by the chunk, whatever the number of frames: the output is written into
preallocated tensors (given by the caller, e.g. a memory-mapped file, or made here).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..body.upper_body import UpperBodyParams, skin
from ..camera.trajectory import CameraTrajectory
from ..errors import InputError
from ..render import rasterize as rz
from ..render.normal_maps import vertex_normals
from .avatar import Avatar
from .background import map_pixels, plane_homography, plane_lookup
from .surface import smoothstep

FRAMES_PER_CHUNK = 8
MAX_SIZE = 4096

Progress = Callable[[int, int], None]


# How much more head-on than the photo a view may see a surface point before the photo's
# colour there gives way (ratio of the cosines: full weight above the second, none below
# the first; at the photo's own view the ratio is 1).
STRETCH = (0.3, 0.6)


@dataclass(frozen=True)
class _Tables:
    """The avatar's static render inputs: every vertex (template, then layer) with its
    lookup positions in the photo's camera and its fill colour ``[V', 9]``, and all faces."""

    attributes: Tensor
    faces: Tensor
    photo_k: Tensor
    photo_w2c: Tensor
    layer_inverse: Tensor


def _tables(avatar: Avatar) -> _Tables:
    model, surface, layer = avatar.model, avatar.surface, avatar.layer
    w2c = avatar.camera.w2c[0].float()
    with torch.no_grad():
        world = model(avatar.params)[0].float()
    to_cam = lambda x: x @ w2c[:3, :3].T + w2c[:3, 3]  # noqa: E731
    body_cam, layer_cam = to_cam(world), to_cam(layer.vertices)
    body = torch.cat([body_cam, body_cam[surface.mirror], surface.fill], 1)
    n = len(layer_cam)
    lay = torch.cat([layer_cam, layer_cam, torch.zeros(n, 3)], 1)
    faces = torch.cat([model.faces.long(), layer.faces + model.num_vertices])
    inverse = _inverse(avatar.photo_transforms.float())  # [J, 3, 4]
    k = avatar.camera.intrinsics(avatar.width, avatar.height)[0].float()
    return _Tables(torch.cat([body, lay]).contiguous(), faces, k, w2c, inverse)


def photo_weights(avatar: Avatar, vertices: Tensor, camera: CameraTrajectory) -> Tensor:
    """Per frame and template vertex, the weight of the photo's colour at the vertex and at
    its mirror ``[F, V, 2]`` (the rest is the fill): the photo must show the point, and the
    view must not see it much more head-on than the photo did (``STRETCH``).

    Args:
        vertices: posed template vertices ``[F, V, 3]`` (world).
        camera: ``F`` frames or one.
    """
    s = avatar.surface
    normals = vertex_normals(vertices, avatar.model.faces)
    to_camera = camera.centers.to(vertices)[:, None] - vertices
    cos = (normals * to_camera).sum(-1) / to_camera.norm(dim=-1)
    # Turned away from this view too, a vertex is drawn only along a silhouette, where the
    # photo's silhouette colour is the one to show.
    away = cos <= 0
    own = s.visible * torch.where(away, 1.0, smoothstep(s.photo_cos / cos.clamp(min=1e-3), *STRETCH))
    has_mirror = (s.mirror != torch.arange(len(s.mirror))).float()
    mirrored = has_mirror * s.seen[s.mirror] * torch.where(
        away, 0.0, smoothstep(s.photo_cos[s.mirror] / cos.clamp(min=1e-3), *STRETCH))
    return torch.stack([own, mirrored * (1 - own)], -1).float()


def layer_world(avatar: Avatar, params: UpperBodyParams, photo_inverse: Tensor | None = None) -> Tensor:
    """The layer's world vertices ``[F, L, 3]`` under ``params`` (``F`` frames): each moved by
    the blend of its joints' maps from the photo's pose to the new one. ``photo_inverse``:
    the inverse of ``avatar.photo_transforms`` (computed when None)."""
    layer = avatar.layer
    if photo_inverse is None:
        photo_inverse = _inverse(avatar.photo_transforms.float())
    with torch.no_grad():
        maps = _compose(avatar.model.joint_transforms(params).float(), photo_inverse)
        return skin(layer.vertices[None].expand(params.frames, -1, -1), maps, layer.skin_weights)


def _inverse(maps: Tensor) -> Tensor:
    """Inverse rigid maps of ``[..., 3, 4]`` arrays."""
    r_inv = maps[..., :3].transpose(-1, -2)
    return torch.cat([r_inv, -(r_inv @ maps[..., 3:])], -1)


def _compose(a: Tensor, b: Tensor) -> Tensor:
    """Rigid maps ``a o b`` of ``[..., 3, 4]`` arrays."""
    return torch.cat([a[..., :3] @ b[..., :3], a[..., :3] @ b[..., 3:] + a[..., 3:]], -1)


def check_size(width: int, height: int) -> None:
    if not (16 <= width <= MAX_SIZE and 16 <= height <= MAX_SIZE):
        raise InputError("width" if not 16 <= width <= MAX_SIZE else "height",
                         f"the render size {width}x{height} must be between 16 and {MAX_SIZE} pixels a side.")


def render_avatar(avatar: Avatar, params: UpperBodyParams, camera: CameraTrajectory, width: int, height: int, *,
                  progress: Progress | None = None, out: tuple[Tensor, Tensor] | None = None,
                  frames_per_chunk: int = FRAMES_PER_CHUNK) -> tuple[Tensor, Tensor]:
    """Frames ``[N, H, W, 3]`` and the person's matte ``[N, H, W]`` (float32, 0..1).

    Args:
        avatar: from :func:`build_avatar`.
        params: ``N`` frames of the avatar's body model (its shape: ``avatar.params.shape``).
        camera: ``N`` frames, or one (a static camera).
        width, height: output size in pixels.
        progress: ``(done, N)`` after each chunk; may raise to cancel.
        out: preallocated ``(images, masks)`` to write into.
    """
    check_size(width, height)
    n = params.frames
    if camera.num_frames not in (1, n):
        raise InputError("camera", f"the camera has {camera.num_frames} frames but {n} frames are rendered; "
                                   f"use a camera of {n} frames or a static one.")
    tables = _tables(avatar)
    images, masks = out if out is not None else (torch.empty(n, height, width, 3), torch.empty(n, height, width))
    static_background = None
    if camera.num_frames == 1:  # one background for every frame
        static_background = _sample(avatar.background, plane_grid(avatar, camera, width, height), "reflection")
    for f0 in range(0, n, frames_per_chunk):
        f1 = min(f0 + frames_per_chunk, n)
        cam = camera if camera.num_frames == 1 else camera.frames(list(range(f0, f1)))
        image, mask = _render_chunk(avatar, tables, params.select(slice(f0, f1)), cam, width, height,
                                    static_background)
        images[f0:f1] = image
        masks[f0:f1] = mask
        if progress is not None:
            progress(f1, n)
    return images, masks


def plane_grid(avatar: Avatar, camera: CameraTrajectory, width: int, height: int) -> Tensor:
    """``grid_sample`` coordinates of the background plane behind each pixel ``[F, H, W, 2]``."""
    k_inv = torch.linalg.inv(camera.intrinsics(width, height))
    ref_k = avatar.camera.intrinsics(avatar.width, avatar.height)[0]
    uv = plane_lookup(camera.c2w, k_inv, avatar.camera.w2c[0], ref_k, avatar.plane_depth, width, height)
    return _normalised(uv, avatar.width, avatar.height)


def _plane_homographies(avatar: Avatar, camera: CameraTrajectory, width: int, height: int) -> Tensor:
    """New pixels -> photo pixels through the background plane, per camera frame ``[F, 3, 3]``."""
    return plane_homography(camera.c2w, torch.linalg.inv(camera.intrinsics(width, height)), avatar.camera.w2c[0],
                            avatar.camera.intrinsics(avatar.width, avatar.height)[0], avatar.plane_depth)


def _normalised(uv: Tensor, width: int, height: int) -> Tensor:
    """Pixel positions (centres at +0.5) -> ``grid_sample`` coordinates (align_corners=False)."""
    return torch.stack([2 * uv[..., 0] / width - 1, 2 * uv[..., 1] / height - 1], -1)


def _sample(image: Tensor, grid: Tensor, padding: str = "border") -> Tensor:
    """``image [h, w, C]`` sampled (bilinear) at ``grid [F, H, W, 2]`` -> ``[F, H, W, C]``."""
    source = image.permute(2, 0, 1)[None].expand(grid.shape[0], -1, -1, -1)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode=padding, align_corners=False).permute(0, 2, 3, 1)


def _photo_at(avatar: Avatar, tables: _Tables, points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The photo's person colours ``[N, 3]``, layer matte ``[N, 1]`` and person matte ``[N, 1]``
    where its camera sees ``points`` ``[N, 3]`` (the photo camera's space)."""
    uvw = points @ tables.photo_k.T
    uv = uvw[:, :2] / uvw[:, 2:].clamp(min=1e-6)
    texel = _sample(avatar.texture, _normalised(uv, avatar.width, avatar.height)[None, None])[0, 0]  # [N, 5]
    return texel[:, :3], texel[:, 3:4], texel[:, 4:5]


def _render_chunk(avatar: Avatar, tables: _Tables, params: UpperBodyParams, camera: CameraTrajectory, width: int,
                  height: int, static_background: Tensor | None) -> tuple[Tensor, Tensor]:
    model, layer = avatar.model, avatar.layer
    with torch.no_grad():
        body = model(params).float()
        world = torch.cat([body, layer_world(avatar, params, tables.layer_inverse)], 1)
    verts, k = rz.camera_space(world, camera, width, height)
    n = verts.shape[0]
    fragments = rz.rasterize(verts, tables.faces, k, width, height, frames_per_chunk=n)
    weights = photo_weights(avatar, body.expand(n, -1, -1), camera)  # [F, V, 2]
    layer_weights = weights.new_tensor([1.0, 0.0]).expand(n, len(layer.vertices), 2)
    weights = torch.cat([weights, layer_weights], 1)
    hit, rows, bary = rz.covered_corners(fragments, tables.faces, weights.shape[1])
    # Every covered pixel: the photo where its camera saw the surface point. Only where the
    # photo's weight is below 1 (turned parts, the far side): the mirror and the fill.
    per_vertex = torch.cat([tables.attributes[None, :, 0:3].expand(n, -1, -1), weights], -1).reshape(-1, 5)
    values = rz.blend_rows(per_vertex, rows, bary)  # [N, 5]
    w_d = values[:, 3:4]
    colour, alpha, person = _photo_at(avatar, tables, values[:, 0:3])
    partial = (w_d[:, 0] < 1 - 1e-4).nonzero()[:, 0]
    if len(partial):
        rest = rz.blend_rows(tables.attributes[:, 3:9].repeat(n, 1), rows[partial], bary[partial])  # [P, 6]
        m_colour, m_alpha, m_person = _photo_at(avatar, tables, rest[:, 0:3])
        w_m = values[partial, 4:5]
        w_f = (1 - w_d[partial] - w_m).clamp(min=0)
        d = w_d[partial]
        colour[partial] = d * colour[partial] + w_m * m_colour + w_f * rest[:, 3:6]
        alpha[partial] = (d * alpha[partial] + w_m * m_alpha + w_f).clamp(0, 1)
        person[partial] = (d * person[partial] + w_m * m_person + w_f).clamp(0, 1)
    person = person[:, 0]

    if static_background is not None:
        image = static_background.expand(n, -1, -1, -1).reshape(-1, 3).clone()
        under = image.index_select(0, hit)
    else:  # the plane only where it shows: off the person, and through its soft edges
        image = torch.zeros(n * height * width, 3)  # under an opaque person: never read as NaN
        behind = torch.ones(n * height * width, dtype=torch.bool)
        behind[hit[alpha[:, 0] >= 1]] = False
        shown = behind.nonzero()[:, 0]
        homography = _plane_homographies(avatar, camera, width, height)
        frame = torch.div(shown, height * width, rounding_mode="floor")
        uv = map_pixels(homography, frame, shown % (height * width), width)
        grid = _normalised(uv, avatar.width, avatar.height)[None, None]
        image.index_copy_(0, shown, _sample(avatar.background, grid, "reflection")[0, 0])
        under = image.index_select(0, hit)
    image.index_copy_(0, hit, (alpha * colour + (1 - alpha) * under).clamp(0, 1))
    mask = torch.zeros(n * height * width)
    mask.index_copy_(0, hit, person)
    return image.reshape(n, height, width, 3), mask.reshape(n, height, width)
