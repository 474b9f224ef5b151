"""The photo on the body's surface: what each vertex of the fitted template shows.

A vertex the photo's camera sees takes its colour from the photo where that camera sees it
(the lookup is per pixel, at render time: see ``render.py``). Here, per vertex:

- ``visible``: whether the photo shows it (it is a corner of a triangle the photo's view
  of the template shows), and ``photo_cos``, the cosine of the angle the
  photo sees it at. A view that sees the vertex much more head-on than the photo did would
  stretch few photo pixels over a large area: the render weighs the photo by the ratio of
  the two cosines (``render.py``), so at the photo's own view every visible point is the
  photo, and under a turn the grazing parts hand over to the mirror or the fill;
- ``mirror``: the vertex across the body's left-right symmetry, whose photo colour serves
  where the vertex itself is not seen (the far side of a turned face);
- ``fill``: the colour where neither is seen, grown over the mesh from the seen vertices
  around it (``grown_fill``), so hidden parts (under the chin, behind the ears, the neck's
  sides) take the colour of what surrounds them: never black, never streaked;
- the inner mouth (``mouth_cavity``: template vertices no outside view reaches with the
  mouth closed, near the mouth) is darkened with its depth behind the lips, so an opened
  jaw shows a dark cavity, and teeth where the photo showed them (a photo with the mouth
  open, ``OPEN_MOUTH``, lends its inner mouth; a closed one shows only a shadow there).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..body.upper_body import UpperBodyModel, UpperBodyParams
from ..camera.trajectory import CameraTrajectory
from ..render import rasterize as rz
from ..render.normal_maps import vertex_normals

GRAZING_COS = (0.05, 0.25)  # cosine of the viewing angle: seen from 0 (at the first) to 1 (at the second)
MIRROR_TOLERANCE = 0.004  # metres between a reflected vertex and its nearest vertex
SMOOTHING = 20  # neighbour-averaging rounds that soften the fill
CAVITY_RADIUS = 0.045  # metres from the mouth's centre
CAVITY_COLOUR = (0.09, 0.03, 0.03)
CAVITY_FADE = 0.7  # mesh steps behind the lips over which the cavity darkens (e-fold)
CAVITY_RIM = 0.3  # how much of the surrounding colour the cavity's first ring keeps
VISIBILITY_SIZE = 256  # pixels of the renders that find the cavity
MOUTH_LANDMARKS = ("mouth_left", "mouth_right")
LIP_LANDMARKS = ("lip_upper_outer", "lip_lower_outer")
OPEN_MOUTH = 0.1  # the photo's jawOpen above which its inner mouth is used
LIP_MARGIN = 0.01  # metres above and below the lips that the inner mouth may reach


@dataclass(frozen=True)
class SurfaceTexture:
    """Per-vertex texture data of the template (``V`` vertices).

    Attributes:
        visible: ``[V]`` 0 or 1, whether the photo shows each vertex.
        photo_cos: ``[V]`` cosine of the angle between the vertex's normal and the ray to
            the photo's camera.
        seen: ``[V]`` 0..1, how well the photo shows the vertex's colour: visible, not at a
            grazing angle (``GRAZING_COS``), inside the person's matte. What a vertex can lend
            its mirror.
        mirror: ``[V]`` int64, the mirrored vertex (itself where there is none, and on the
            inner mouth).
        fill: ``[V, 3]`` colour where neither is seen.
        cavity: ``[V]`` bool, the inner mouth.
    """

    visible: Tensor
    photo_cos: Tensor
    seen: Tensor
    mirror: Tensor
    fill: Tensor
    cavity: Tensor


def smoothstep(x: Tensor, lo: float, hi: float) -> Tensor:
    t = ((x - lo) / (hi - lo)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def mirror_vertices(rest: Tensor, tolerance: float = MIRROR_TOLERANCE) -> Tensor:
    """For symmetric rest vertices ``[V, 3]`` (world: x is left-right), each vertex's mirror
    across ``x = 0`` ``[V]`` (int64), or itself where none lies within ``tolerance``."""
    reflected = rest * rest.new_tensor([-1.0, 1.0, 1.0])
    distance, nearest = torch.cdist(reflected.float(), rest.float()).min(1)
    own = torch.arange(len(rest))
    return torch.where(distance <= tolerance, nearest, own)


def neighbour_mean_matrix(faces: Tensor, num_vertices: int) -> Tensor:
    """Sparse ``[V, V]`` matrix taking each vertex to the mean of its mesh neighbours."""
    f = faces.long()
    src = torch.cat([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    dst = torch.cat([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    pairs = torch.unique(torch.stack([src, dst]), dim=1)
    degree = torch.bincount(pairs[0], minlength=num_vertices).clamp(min=1).float()
    values = 1.0 / degree[pairs[0]]
    return torch.sparse_coo_tensor(pairs, values, (num_vertices, num_vertices), check_invariants=True).coalesce()


def grown_fill(values: Tensor, known: Tensor, mean: Tensor, smoothing: int = SMOOTHING) -> Tensor:
    """Unknown rows of ``values [V, C]`` filled from the known rows (``known [V]`` bool)
    outward over the mesh: each ring of newly reached vertices takes the mean of its reached
    neighbours (so a hidden patch takes the colour of the surface around it, a shoulder
    under a collar the suit's, not a blend of everything near), then ``smoothing`` rounds
    of neighbour averaging on the filled rows soften the seams between the fronts.
    ``mean`` from :func:`neighbour_mean_matrix`."""
    if not bool(known.any()):
        return values.clone()
    x = torch.where(known[:, None], values, torch.zeros_like(values))
    reached = known.clone()
    while True:
        weight = (mean @ reached.float()[:, None])[:, 0]
        new = ~reached & (weight > 0)
        if not bool(new.any()):
            break
        grown = (mean @ (x * reached.float()[:, None])) / weight.clamp(min=1e-12)[:, None]
        x = torch.where(new[:, None], grown, x)
        reached |= new
    x = torch.where(reached[:, None], x, values[known].mean(0))  # parts no seen vertex connects to
    for _ in range(smoothing):
        x = torch.where(known[:, None], values, mean @ x)
    return x


def mouth_cavity(model: UpperBodyModel, shape: Tensor, mean: Tensor) -> tuple[Tensor, Tensor]:
    """The inner mouth of the template with ``shape`` ``[V]`` (bool), and each vertex's depth
    behind the visible surface in neighbour steps ``[V]`` (float).

    Inner: between the mouth corners, within a centimetre of the lips' height, and deeper
    than the corners (the lips' rearmost outer points); or near the mouth and hidden from
    every view around the front with the mouth closed.
    """
    params = model.neutral_params(1)
    params.shape = shape.to(params.shape)
    with torch.no_grad():
        rest = model(params)[0].double()
    seen = torch.zeros(len(rest), dtype=torch.bool)
    size = VISIBILITY_SIZE
    for yaw in (-75.0, -40.0, 0.0, 40.0, 75.0):
        for pitch in (-45.0, -15.0, 15.0, 45.0):
            camera = _look_at_head(yaw, pitch)
            verts, k = rz.camera_space(rest[None], camera, size, size)
            seen |= _visible(rz.rasterize(verts, model.faces, k, size, size), model.faces, len(rest))
    marks = model.landmarks(rest[None].float())[0].double()
    at = {name: marks[model.landmark_names.index(name)] for name in MOUTH_LANDMARKS + LIP_LANDMARKS}
    left, right = at["mouth_left"], at["mouth_right"]
    centre = (left + right) / 2
    between = (rest[:, 0] - centre[0]).abs() < (left[0] - right[0]).abs() / 2
    height = (rest[:, 1] > at["lip_lower_outer"][1] - LIP_MARGIN) & (rest[:, 1] < at["lip_upper_outer"][1] + LIP_MARGIN)
    deep = rest[:, 2] < torch.minimum(left[2], right[2]) - 0.002
    near = (rest - centre).norm(dim=1) < CAVITY_RADIUS
    cavity = (between & height & deep) | (~seen & near)
    depth = mesh_steps(~cavity, mean)
    return cavity, depth


def mesh_steps(start: Tensor, mean: Tensor, steps: int = 12) -> Tensor:
    """Mesh-neighbour steps from the ``start`` vertices ``[V]`` (bool), up to ``steps``."""
    reached = start.clone()
    out = torch.full((len(start),), float(steps))
    out[start] = 0
    for k in range(1, steps):
        grown = (mean @ reached.float()[:, None])[:, 0] > 0
        out[grown & ~reached] = k
        reached |= grown
    return out


def _look_at_head(yaw: float, pitch: float) -> CameraTrajectory:
    from ..camera.paths import View, static

    return static(1, View(yaw=yaw, pitch=pitch, distance=0.6, fov=30.0))


def _visible(fragments: rz.Fragments, faces: Tensor, num_vertices: int) -> Tensor:
    """The corners of the triangles a render shows (its first frame) ``[V]`` (bool)."""
    shown = torch.unique(fragments.face_id[0][fragments.face_id[0] >= 0])
    visible = torch.zeros(num_vertices, dtype=torch.bool)
    visible[faces.long()[shown].reshape(-1)] = True
    return visible


def project_pixels(points_cam: Tensor, k: Tensor) -> Tensor:
    """Pixel positions ``[..., 2]`` (centres at +0.5) of camera-space points ``[..., 3]``."""
    uvw = points_cam @ k.to(points_cam).T
    return uvw[..., :2] / uvw[..., 2:].clamp(min=1e-9)


def sample_image(image: Tensor, uv: Tensor) -> Tensor:
    """Bilinear samples of ``image [H, W, C]`` at pixel positions ``uv [N, 2]`` -> ``[N, C]``
    (edges clamped)."""
    height, width = image.shape[:2]
    grid = torch.stack([2 * uv[:, 0] / width - 1, 2 * uv[:, 1] / height - 1], -1).float()
    out = torch.nn.functional.grid_sample(image.permute(2, 0, 1)[None].float(), grid[None, None],
                                          mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, 0].T


def surface_texture(model: UpperBodyModel, params: UpperBodyParams, camera: CameraTrajectory, texture: Tensor,
                    fragments: rz.Fragments, mirror: Tensor, cavity: Tensor, cavity_depth: Tensor,
                    mean: Tensor) -> SurfaceTexture:
    """Per-vertex texture data of the template fitted to a photo.

    Args:
        model, params, camera: the fit (one frame) and the photo's camera.
        texture: the avatar's texture ``[H, W, 5]`` (colours, layer matte, person matte).
        fragments: the template rendered by ``camera`` at the photo's size.
        mirror: :func:`mirror_vertices` of the template ``[V]``.
        cavity, cavity_depth: :func:`mouth_cavity` of the template's shape.
        mean: :func:`neighbour_mean_matrix` of the template.
    """
    height, width = texture.shape[:2]
    with torch.no_grad():
        world = model(params)[0]
    verts, k = rz.camera_space(world[None], camera, width, height)
    verts, k = verts[0], k[0]
    normals = vertex_normals(verts[None], model.faces)[0]
    facing = (normals * -verts / verts.norm(dim=1, keepdim=True)).sum(1)
    samples = sample_image(texture, project_pixels(verts, k))  # [V, 5]
    # Outside the person's matte the photo shows the background behind a template wider
    # than the person: not the person's colour.
    visible = _visible(fragments, model.faces, len(verts)).float()
    # A closed mouth shows its inside only through the lips' gap, a few pixels of shadow:
    # the inner mouth takes the photo only when the photo's mouth is open (teeth shown).
    jaw = model.face_labels.index(model.jaw_open_label)
    if float(params.face[0, jaw]) < OPEN_MOUTH:
        visible = torch.where(cavity, 0.0, visible)
    seen = visible * smoothstep(facing, *GRAZING_COS).float() * (samples[:, 4] > 0.5).float()
    mirror = torch.where(cavity, torch.arange(len(mirror)), mirror)
    mirror_seen = torch.where(mirror != torch.arange(len(mirror)), seen[mirror], 0.0)
    known = seen > 0.5
    colours = samples[:, :3]
    by_mirror = ~known & (mirror_seen > 0.5)
    colours = torch.where(by_mirror[:, None], colours[mirror], colours)
    fill = grown_fill(colours, known | by_mirror, mean)
    # The inner mouth darkens with its depth behind the lips.
    fade = CAVITY_RIM * torch.exp(-(cavity_depth - 1).clamp(min=0) / CAVITY_FADE)[:, None]
    dark = fill * fade + torch.tensor(CAVITY_COLOUR) * (1 - fade)
    fill = torch.where(cavity[:, None] & ~known[:, None], dark, fill)
    return SurfaceTexture(visible, facing.float(), seen, mirror, fill.float(), cavity)
