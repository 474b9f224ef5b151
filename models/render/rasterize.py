"""A vectorised z-buffer triangle rasterizer in pure PyTorch (CPU and CUDA).

Conventions (those of :mod:`models.camera` and the Plücker rays):

- Vertices are in OpenCV camera space (x right, y down, z forward, metres). Pixel
  ``(u, v)`` has its centre at ``(u + 0.5, v + 0.5)``; a point projects to
  ``(fx x / z + cx, fy y / z + cy)`` with the pixel intrinsics ``K [F, 3, 3]`` of
  :meth:`CameraTrajectory.intrinsics`.
- A pixel is covered by a triangle when its centre is inside the projected triangle.
  Projected corners are snapped to 1/256 pixel, as GPU rasterizers do, which makes every
  coverage decision exact in float64. A centre exactly on an edge belongs to the triangle
  when the triangle lies to the edge's right or below a horizontal edge (the top-left
  rule), so triangles sharing an edge cover each pixel centre along it exactly once: no
  holes, no double hits. Both windings are drawn unless ``cull_back_faces``.
- The nearest surface wins: depth is compared at the pixel centre on the triangle's plane
  (perspective-correct); exact ties go to the lower face index.
- Near plane: only the part of a triangle with ``z >= near`` is drawn. Triangles entirely
  in front are drawn as they are, triangles entirely behind are dropped, triangles crossing
  it are clipped there (as are the rare ones reaching more than GUARD_BAND pixels from the
  image centre, which keeps the float64 arithmetic exact). Clipping never changes
  barycentrics or depth: those come from the original 3D triangle along the pixel's ray.

Why it is fast: there is no per-pixel edge test. For every row of a triangle's bounding
box, the span of covered pixel centres is solved exactly from the edge equations (all rows
of all triangles at once). The spans, grouped by length in powers of two, become dense
``[spans, pixels]`` blocks of z-buffer keys (inverse depth in the high bits, triangle rank
in the low bits), each reduced into the image by one ``scatter_reduce("amax")``: the work
is the covered area plus the rows, padded less than 2x, in a few dozen element-wise passes.
Front faces are drawn first; back faces then go through a hierarchical-z test (8x8 tiles)
that skips those certainly hidden, which for a closed mesh is nearly all of them, so
drawing both sides costs little more than culling. Per-triangle data is kept as one
contiguous array per corner: reductions over a trailing dimension of 3, cross products and
``t[:, index]`` are slow in eager PyTorch, row-wise ``index_select`` is fast.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..camera import CameraTrajectory
from ..errors import InputError

SUBPIXEL = 256.0  # snapping grid: 8 sub-pixel bits, as in GPU rasterizers
# Screen triangles stay within GUARD_BAND pixels of the image centre (further out they are
# clipped): it keeps the float64 arithmetic exact, and inside OpenGL's largest viewport
# (16384 pixels) so the moderngl backend never clips them differently.
GUARD_BAND = 8192.0 - 16.0
MAX_IMAGE_SIZE = 8192
DEFAULT_NEAR = 0.01  # metres
# Edge values are multiples of 2^-16 px²; adding 2^-18 on top-left edges turns their
# "E >= 0" into "E > 0" and keeps every span boundary off the integers (exact floors).
_TIE = 2.0**-18
# z-buffer keys (int64, reduced with amax): the float64 inverse depth's bits (positive
# floats order like their bits) with the low _ID_BITS bits replaced by a rank, T - 1 - the
# triangle's index among T (nearest first, then the lower index). The empty key is the
# smallest int64 with rank T: it loses to every triangle and decodes to "none".
_ID_BITS = 26
_RANK_MASK = (1 << _ID_BITS) - 1


@dataclass(frozen=True)
class Fragments:
    """Per-pixel rasterization result for ``F`` frames of ``H x W`` pixels.

    Attributes:
        face_id: index of the front-most face ``[F, H, W]`` (int64), -1 on background.
        bary: perspective-correct barycentrics of the pixel centre in that face
            ``[F, H, W, 3]`` (float32, sum 1; 0 on background).
        depth: camera-space z of the surface at the pixel centre ``[F, H, W]``
            (float32 metres, 0 on background).
    """

    face_id: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """Coverage ``[F, H, W]`` (bool)."""
        return self.face_id >= 0


@dataclass(frozen=True)
class ScreenTriangles:
    """Projected, clipped and snapped triangles of a batch of frames (``T`` of them).

    Attributes:
        x, y: snapped pixel coordinates of the corners ``[3, T]`` each (float64).
        frame: frame of each triangle ``[T]`` (int64), relative to the batch.
        face: the mesh face it comes from ``[T]`` (int64); a clipped face gives several.
        inv_depth: ``(a, b, c)`` with ``1 / z = a u + b v + c`` on the face's plane
            ``[3, T]`` (float64).
    """

    x: torch.Tensor
    y: torch.Tensor
    frame: torch.Tensor
    face: torch.Tensor
    inv_depth: torch.Tensor

    def __len__(self) -> int:
        return self.face.shape[0]

    def select(self, index: torch.Tensor) -> ScreenTriangles:
        """The triangles ``index`` (a row-wise gather: much faster than ``t[:, index]``)."""
        pick = lambda t: torch.stack([row.index_select(0, index) for row in t])  # noqa: E731
        return ScreenTriangles(pick(self.x), pick(self.y), self.frame.index_select(0, index),
                               self.face.index_select(0, index), pick(self.inv_depth))


def broadcast_frames(mesh_frames: int, camera_frames: int) -> int:
    """The number of output frames of a mesh sequence seen by a camera trajectory: equal
    lengths pair up frame by frame, a static camera (1 frame) follows every mesh frame, a
    static mesh (1 frame) every camera frame; anything else is an :class:`InputError`."""
    if mesh_frames == camera_frames or camera_frames == 1:
        return mesh_frames
    if mesh_frames == 1:
        return camera_frames
    raise InputError(
        "camera",
        f"the camera trajectory has {camera_frames} frames but the body_track has {mesh_frames}; "
        f"use a camera with {mesh_frames} frames (or 1 for a static camera), or a body track "
        f"of {camera_frames} frames.",
    )


def camera_space(vertices_world: torch.Tensor, camera: CameraTrajectory, width: int,
                 height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """World vertices ``[F, V, 3]`` seen by ``camera``: camera-space vertices ``[N, V, 3]``
    (float64) and pixel intrinsics ``[N, 3, 3]`` for :func:`rasterize`, on the vertices'
    device, with ``N`` frames as :func:`broadcast_frames` pairs them up."""
    num_frames = broadcast_frames(vertices_world.shape[0], camera.num_frames)
    device = vertices_world.device
    w2c = camera.w2c.to(device).expand(num_frames, -1, -1)
    verts = vertices_world.double().expand(num_frames, -1, -1)
    k = camera.intrinsics(width, height).to(device).expand(num_frames, -1, -1)
    return verts @ w2c[:, :3, :3].transpose(-1, -2) + w2c[:, None, :3, 3], k


def face_ray_planes(vertices: torch.Tensor, faces: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Per-face affine maps from a pixel to its ray's hit on the face, ``[9, F * M]``.

    For a pixel position ``p = (u, v, 1)`` (centres at +0.5) and a face with camera-space
    corners ``A, B, C``, ``lam = Q p`` solves ``[A B C] lam = K^-1 p``. The ray point
    ``K^-1 p / sum(lam)`` is on the face's plane: its barycentrics are ``lam / sum(lam)``
    and its depth ``1 / sum(lam)``. Column ``f * M + m`` holds frame ``f``'s face ``m``,
    ``Q`` row-major (one contiguous array per coefficient: the layout :func:`eval_at_pixels`
    reads fast). Float64; zero for faces whose plane contains the camera centre (they
    project to a line and are never drawn).

    Args:
        vertices: camera-space vertices ``[F, V, 3]``.
        faces: ``[M, 3]`` vertex indices (int64, on the vertices' device).
        intrinsics: pixel intrinsics ``[F, 3, 3]``.
    """
    num_frames, num_verts = vertices.shape[:2]
    num_faces = faces.shape[0]
    k = intrinsics.to(device=vertices.device, dtype=torch.float64)
    frame = torch.arange(num_frames, device=vertices.device).repeat_interleave(num_faces)
    corner = faces.T.repeat(1, num_frames) + frame[None] * num_verts  # [3, F * M]
    a, b, c = (torch.stack([t.index_select(0, i) for t in vertices.double().reshape(-1, 3).unbind(1)])
               for i in corner)  # corners, [3 (xyz), F * M] each
    rows = [_cross(b, c), _cross(c, a), _cross(a, b)]  # [A B C]^-1 = rows / det
    inv_det = 1.0 / (a * rows[0]).sum(0)
    inv_det = torch.where(torch.isfinite(inv_det), inv_det, 0.0)
    fx, fy, cx, cy = (k[:, i, j].repeat_interleave(num_faces) for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
    out = []
    for r in rows:  # r K^-1 / det, K^-1 = [[1/fx, 0, -cx/fx], [0, 1/fy, -cy/fy], [0, 0, 1]]
        qu, qv = r[0] * inv_det / fx, r[1] * inv_det / fy
        out += [qu, qv, r[2] * inv_det - qu * cx - qv * cy]
    return torch.stack(out)


def project_faces(vertices: torch.Tensor, faces: torch.Tensor, intrinsics: torch.Tensor,
                  width: int, height: int, near: float = DEFAULT_NEAR, cull_back_faces: bool = False,
                  planes: torch.Tensor | None = None) -> ScreenTriangles:
    """Project, clip (near plane, guard band), snap and cull faces to screen triangles.

    Args:
        vertices: camera-space vertices ``[F, V, 3]``.
        faces: ``[M, 3]`` vertex indices (int64, on the vertices' device).
        intrinsics: pixel intrinsics ``[F, 3, 3]``.
        near: near-plane depth in metres.
        cull_back_faces: drop faces that appear counter-clockwise on screen (y down):
            faces wound counter-clockwise seen from outside, seen from behind.
        planes: :func:`face_ray_planes` of these frames if already computed (saves work).
    Returns:
        the triangles whose bounding box holds a pixel centre, ordered by frame then face
        (the order that decides exact depth ties).
    """
    num_frames, num_verts = vertices.shape[:2]
    num_faces = faces.shape[0]
    device = vertices.device
    k = intrinsics.to(device=device, dtype=torch.float64)
    per_face = lambda t: t.repeat_interleave(num_faces)  # noqa: E731  [F] -> [F * M]
    fx, fy, cx, cy = (per_face(k[:, i, j]) for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
    frame = per_face(torch.arange(num_frames, device=device))
    face = torch.arange(num_faces, device=device).repeat(num_frames)
    corner = (faces.T.repeat(1, num_frames) + frame[None] * num_verts).reshape(-1)  # [3 * F * M], corner-major
    px, py, pz = (t.index_select(0, corner).reshape(3, -1) for t in vertices.double().reshape(-1, 3).unbind(1))
    inv_z = 1.0 / torch.where(pz == 0, 1e-30, pz)  # z = 0 only occurs on faces that get clipped
    if planes is None:
        inv_depth = _inverse_depth_planes(px, py, pz, fx, fy, cx, cy)
    else:  # 1 / z = sum(lam): the planes summed over the corners
        inv_depth = planes[0:3] + planes[3:6] + planes[6:9]
    tris = ScreenTriangles(fx * px * inv_z + cx, fy * py * inv_z + cy, frame, face, inv_depth)
    in_front = pz >= near
    in_band = torch.maximum((tris.x - width / 2).abs(), (tris.y - height / 2).abs()) <= GUARD_BAND
    simple = in_front.all(0) & in_band.all(0)
    if not bool(simple.all()):  # clip the few faces crossing the near plane or guard band
        partly = (in_front.any(0) & ~simple).nonzero()[:, 0]
        corners = torch.stack([px, py, pz], -1).index_select(1, partly).transpose(0, 1)  # [N, 3, 3]
        cx_, cy_, row = _clip(corners, k, frame.index_select(0, partly), near, width, height)
        kept, src = simple.nonzero()[:, 0], partly.index_select(0, row)
        clipped = tris.select(src)
        tris = tris.select(kept)
        tris = ScreenTriangles(torch.cat([tris.x, cx_], 1), torch.cat([tris.y, cy_], 1),
                               torch.cat([tris.frame, clipped.frame]), torch.cat([tris.face, clipped.face]),
                               torch.cat([tris.inv_depth, clipped.inv_depth], 1))
        tris = tris.select(torch.argsort(torch.cat([kept, src]), stable=True))  # frame, face order
    x, y = torch.round(tris.x * SUBPIXEL) / SUBPIXEL, torch.round(tris.y * SUBPIXEL) / SUBPIXEL
    area2 = (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0])
    keep = area2 < 0 if cull_back_faces else area2 != 0  # seen from outside = clockwise
    lo_x, hi_x = _pixel_range(x, width)
    lo_y, hi_y = _pixel_range(y, height)
    keep &= (hi_x >= lo_x) & (hi_y >= lo_y)
    return ScreenTriangles(x, y, tris.frame, tris.face, tris.inv_depth).select(keep.nonzero()[:, 0])


def rasterize_faces(tris: ScreenTriangles, num_frames: int, width: int, height: int) -> torch.Tensor:
    """The front-most screen triangle of every pixel ``[F, H, W]`` (int64 index into
    ``tris``, -1 where none): the z-buffer of :func:`rasterize`."""
    return (len(tris) - 1) - _rank_image(tris, num_frames, width, height)


def _rank_image(tris: ScreenTriangles, num_frames: int, width: int, height: int) -> torch.Tensor:
    """The z-buffer: the rank ``T - 1 - index`` of every pixel's front-most triangle, or
    ``T`` where none ``[F, H, W]`` (int64)."""
    count = len(tris)
    if count >= 1 << _ID_BITS:
        raise ValueError(f"more than {1 << _ID_BITS} screen triangles in one batch; use fewer frames per chunk")
    empty = torch.iinfo(torch.int64).min + count
    keys = torch.full((num_frames * height * width,), empty, dtype=torch.int64, device=tris.x.device)
    x, y = tris.x, tris.y
    front = (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0]) < 0  # clockwise
    n_front = int(front.sum())
    if 0 < n_front < count:  # front faces first, then the back faces they do not hide
        _draw(keys, tris, front.nonzero()[:, 0], width, height)
        back = (~front).nonzero()[:, 0]
        _draw(keys, tris, back[~_hidden(keys, tris, back, num_frames, width, height)], width, height)
    elif count:
        _draw(keys, tris, None, width, height)
    return keys.bitwise_and_(_RANK_MASK).reshape(num_frames, height, width)


def _draw(keys: torch.Tensor, tris: ScreenTriangles, index: torch.Tensor | None, width: int, height: int) -> None:
    """Z-buffer the screen triangles ``index`` (all if None) into ``keys``."""
    if index is not None and index.numel() == 0:
        return
    spans = _spans(tris if index is None else tris.select(index), width, height, index, len(tris))
    for cap, group in _pow2_groups(spans[1], spans):
        _scatter_spans(keys, group, cap)


def _hidden(keys: torch.Tensor, tris: ScreenTriangles, index: torch.Tensor, num_frames: int, width: int,
            height: int) -> torch.Tensor:
    """Which of the triangles ``index`` are certainly behind what the z-buffer holds at every
    pixel of their bounding box ``[len(index)]`` (bool): conservative, so skipping them
    changes no pixel.

    A hierarchical-z test: each 8x8 tile keeps the smallest inverse depth in the z-buffer
    (0 if a pixel is empty), and a triangle whose bounding box touches at most 2x2 tiles is
    hidden when its largest inverse depth (at a corner: it is affine on the triangle) is
    below all of theirs. For a closed mesh this removes nearly every back face, leaving
    those along the silhouette, which may show through gaps (open meshes) or not.
    """
    tile = 8
    inv_z = keys.view(torch.float64).clamp(min=0).float().view(num_frames, 1, height, width)  # empty: 0
    tile_min = -torch.nn.functional.max_pool2d(-inv_z, tile, tile, ceil_mode=True)[:, 0]  # [F, h, w]
    th, tw = tile_min.shape[1:]
    t = tris.select(index)
    q = t.inv_depth
    far = torch.amax(q[0] * t.x + q[1] * t.y + q[2], 0)  # [T]: the largest inverse depth
    lo_x, hi_x = (torch.div(c, tile, rounding_mode="floor").long() for c in _pixel_range(t.x, width))
    lo_y, hi_y = (torch.div(c, tile, rounding_mode="floor").long() for c in _pixel_range(t.y, height))
    small = (hi_x - lo_x <= 1) & (hi_y - lo_y <= 1)
    flat = tile_min.reshape(-1)
    base = t.frame * (th * tw)
    nearest = torch.minimum(
        torch.minimum(flat.index_select(0, base + lo_y * tw + lo_x), flat.index_select(0, base + lo_y * tw + hi_x)),
        torch.minimum(flat.index_select(0, base + hi_y * tw + lo_x), flat.index_select(0, base + hi_y * tw + hi_x)))
    # The margin covers float32 rounding and the truncated key bits (both < 1e-7 relative).
    return small & (far * (1 + 1e-5) < nearest)


def rasterize_face_ids(vertices: torch.Tensor, faces: torch.Tensor, intrinsics: torch.Tensor,
                       width: int, height: int, near: float = DEFAULT_NEAR, cull_back_faces: bool = False,
                       frames_per_chunk: int = 4, backend: str = "torch",
                       planes: torch.Tensor | None = None, flat_index: bool = False) -> torch.Tensor:
    """The front-most face of every pixel ``[F, H, W]`` (int64, -1 on background).

    Arguments as :func:`rasterize`, plus the :func:`face_ray_planes` of all frames if
    already computed. With ``flat_index``, pixels hold ``f * M + face`` for frame ``f`` and
    background pixels ``F * M``: an index into per-face arrays of all frames with one extra
    background entry (see :func:`eval_at_pixels`). Backends differ only in this step;
    everything after it (barycentrics, depth, shading) is shared.
    """
    if not (1 <= width <= MAX_IMAGE_SIZE and 1 <= height <= MAX_IMAGE_SIZE):
        raise ValueError(f"image size {width}x{height} is outside 1..{MAX_IMAGE_SIZE}")
    if backend not in ("torch", "moderngl"):
        raise ValueError(f"unknown rasterizer backend {backend!r}; use 'torch' or 'moderngl'")
    device = vertices.device
    faces = faces.to(device=device, dtype=torch.long)
    intrinsics = intrinsics.to(device)
    num_frames, num_faces = vertices.shape[0], faces.shape[0]
    out = []
    for f0 in range(0, num_frames, frames_per_chunk):
        f1 = min(f0 + frames_per_chunk, num_frames)
        chunk_planes = None if planes is None else planes[:, f0 * num_faces:f1 * num_faces]
        tris = project_faces(vertices[f0:f1], faces, intrinsics[f0:f1], width, height, near, cull_back_faces,
                             chunk_planes)
        value = tris.face + (tris.frame + f0) * num_faces if flat_index else tris.face
        background = value.new_full((1,), num_frames * num_faces if flat_index else -1)
        if backend == "torch":  # index by rank T - 1 - triangle; rank T is "none"
            table = torch.cat([value.flip(0), background])
            index = _rank_image(tris, f1 - f0, width, height)
        else:
            from .moderngl_backend import rasterize_faces as draw

            table = torch.cat([background, value])
            index = draw(tris, f1 - f0, width, height).to(device) + 1  # triangle -1: background
        out.append(table.index_select(0, index.reshape(-1)).reshape(index.shape))
    return out[0] if len(out) == 1 else torch.cat(out)


def rasterize(vertices: torch.Tensor, faces: torch.Tensor, intrinsics: torch.Tensor,
              width: int, height: int, near: float = DEFAULT_NEAR, cull_back_faces: bool = False,
              frames_per_chunk: int = 4, backend: str = "torch") -> Fragments:
    """Rasterize a mesh sequence: the front-most face, barycentrics and depth per pixel.

    Args:
        vertices: camera-space vertices ``[F, V, 3]`` (OpenCV axes, metres); for world
            vertices and a :class:`CameraTrajectory` use :func:`camera_space` first.
        faces: ``[M, 3]`` vertex indices.
        intrinsics: pixel intrinsics ``[F, 3, 3]`` (e.g. ``camera.intrinsics(W, H)``).
        width, height: image size in pixels (at most 8192 each).
        near: near-plane depth in metres (see the module docstring).
        cull_back_faces: skip faces seen from behind (a closed mesh looks the same, up to
            depth ties along its silhouette).
        frames_per_chunk: frames rasterized at once (bounds memory).
        backend: ``"torch"``, or ``"moderngl"`` (optional OpenGL z-buffer on CPU tensors;
            the same face ids, hence bit-identical fragments, but slower through this API).
    Returns:
        :class:`Fragments` on the vertices' device.
    """
    faces = faces.to(device=vertices.device, dtype=torch.long)
    planes = face_ray_planes(vertices, faces, intrinsics)
    rows = rasterize_face_ids(vertices, faces, intrinsics, width, height, near, cull_back_faces,
                              frames_per_chunk, backend, planes, flat_index=True)
    return resolve(rows, planes)


def resolve(rows: torch.Tensor, planes: torch.Tensor) -> Fragments:
    """Barycentrics and depth at every covered pixel centre.

    Args:
        rows: ``[F, H, W]`` face indices from :func:`rasterize_face_ids` with ``flat_index``.
        planes: :func:`face_ray_planes` of the same frames ``[9, F * M]``.
    """
    num_frames = rows.shape[0]
    num_faces = planes.shape[1] // num_frames
    lam = torch.stack(eval_at_pixels(rows, torch.cat([planes, planes.new_zeros(9, 1)], 1)))  # [3, F, H, W]
    covered = rows < num_frames * num_faces
    inv_depth = lam[0] + lam[1] + lam[2]
    safe = torch.where(covered, inv_depth, 1.0)
    bary = torch.where(covered, lam / safe, 0.0).float().permute(1, 2, 3, 0).contiguous()
    depth = torch.where(covered, 1.0 / safe, 0.0).float()
    frame = torch.arange(num_frames, device=rows.device)[:, None, None] * num_faces
    return Fragments(torch.where(covered, rows - frame, -1), bary, depth)


def eval_at_pixels(rows: torch.Tensor, per_face: torch.Tensor) -> list[torch.Tensor]:
    """Evaluate per-face affine maps of the pixel position at every pixel centre.

    Args:
        rows: ``[F, H, W]`` indices into ``per_face``'s columns, as given by
            :func:`rasterize_face_ids` with ``flat_index`` (``F * M`` on background).
        per_face: ``[3 C, F * M + 1]``: column ``f * M + m`` holds, for frame ``f``'s face
            ``m``, a ``C x 3`` matrix (row-major) applied to ``(u, v, 1)``; the last column
            is used on background pixels.
    Returns:
        ``C`` arrays ``[F, H, W]`` in the dtype of ``per_face`` (separate: no stacking copy).
    """
    num_frames, height, width = rows.shape
    flat = rows.reshape(-1)
    u = torch.arange(width, device=rows.device, dtype=per_face.dtype) + 0.5
    v = (torch.arange(height, device=rows.device, dtype=per_face.dtype) + 0.5)[:, None]
    values = []
    for c in range(0, per_face.shape[0], 3):
        a, b, d = (per_face[c + i].index_select(0, flat).view(num_frames, height, width) for i in range(3))
        values.append(torch.addcmul(torch.addcmul(d, a, u), b, v))
    return values


def interpolate(fragments: Fragments, attributes: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Interpolate per-vertex attributes ``[F, V, C]`` at the pixels: ``[F, H, W, C]``
    (zero on background). ``faces`` ``[M, 3]`` as given to :func:`rasterize`."""
    num_frames, height, width = fragments.face_id.shape
    num_verts, channels = attributes.shape[1:]
    flat = fragments.face_id.reshape(-1)
    hit = (flat >= 0).nonzero()[:, 0]
    frame = hit // (height * width)
    corners = faces.to(attributes.device, torch.long).index_select(0, flat.index_select(0, hit))
    values = attributes.reshape(-1, channels).index_select(
        0, (corners + frame[:, None] * num_verts).reshape(-1)).reshape(-1, 3, channels)
    bary = fragments.bary.reshape(-1, 3).index_select(0, hit).to(values.dtype)
    out = attributes.new_zeros(num_frames * height * width, channels)
    out.index_copy_(0, hit, (bary[:, :, None] * values).sum(1))
    return out.reshape(num_frames, height, width, channels)


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cross product of vectors stored component-first, ``[3, N]``."""
    return torch.stack([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _inverse_depth_planes(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, fx: torch.Tensor,
                          fy: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:
    """``(a, b, c) [3, T]`` with ``1 / z = a u + b v + c`` on the planes of triangles with
    camera-space corners ``x, y, z [3, T]``: ``n . K^-1 (u, v, 1) / n . A``."""
    e1 = [t[1] - t[0] for t in (x, y, z)]
    e2 = [t[2] - t[0] for t in (x, y, z)]
    nx = e1[1] * e2[2] - e1[2] * e2[1]
    ny = e1[2] * e2[0] - e1[0] * e2[2]
    nz = e1[0] * e2[1] - e1[1] * e2[0]
    d = nx * x[0] + ny * y[0] + nz * z[0]
    inv_d = torch.where(d != 0, 1.0 / torch.where(d != 0, d, 1.0), 0.0)
    a, b = nx * inv_d / fx, ny * inv_d / fy
    return torch.stack([a, b, nz * inv_d - a * cx - b * cy])


def _pixel_range(coord: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last pixel index whose centre lies within the corners' range ``[3, T]``,
    clipped to ``0 .. size - 1`` (float64; empty where ``last < first``)."""
    lo = torch.minimum(torch.minimum(coord[0], coord[1]), coord[2])
    hi = torch.maximum(torch.maximum(coord[0], coord[1]), coord[2])
    return torch.ceil(lo - 0.5).clamp(min=0), torch.floor(hi - 0.5).clamp(max=size - 1)


def _clip(corners: torch.Tensor, k: torch.Tensor, frame: torch.Tensor, near: float, width: int,
          height: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clip camera-space triangles ``[N, 3, 3]`` to ``z >= near`` and the guard band
    (Sutherland-Hodgman, all polygons at once) and fan the polygons into triangles.
    Returns corner pixel coordinates ``x, y [3, T]`` and, per triangle, its input row."""
    kk = k.index_select(0, frame)  # [N, 3, 3]
    fx, fy, cx, cy = kk[:, 0, 0], kk[:, 1, 1], kk[:, 0, 2], kk[:, 1, 2]
    zero, g = torch.zeros_like(fx), GUARD_BAND
    # Half-spaces n . p + d >= 0 in camera space: z >= near, then (for z > 0)
    # |u - W/2| <= g, i.e. fx x + (cx - W/2 + g) z >= 0 and -fx x + (W/2 + g - cx) z >= 0.
    normals = [
        torch.stack([zero, zero, zero + 1], -1),
        torch.stack([fx, zero, cx - width / 2 + g], -1), torch.stack([-fx, zero, width / 2 + g - cx], -1),
        torch.stack([zero, fy, cy - height / 2 + g], -1), torch.stack([zero, -fy, height / 2 + g - cy], -1),
    ]
    offsets = [-near, 0.0, 0.0, 0.0, 0.0]
    poly, count = corners, torch.full_like(frame, 3)
    for normal, offset in zip(normals, offsets):
        poly, count = _clip_polygons(poly, count, normal, offset)
    u = fx[:, None] * poly[..., 0] / poly[..., 2] + cx[:, None]
    v = fy[:, None] * poly[..., 1] / poly[..., 2] + cy[:, None]
    fan = torch.arange(1, poly.shape[1] - 1, device=poly.device)
    row, j = (fan[None] < count[:, None] - 1).nonzero().unbind(1)  # triangle (0, j, j + 1)
    jj = fan[j]
    corner = [torch.zeros_like(jj), jj, jj + 1]
    x = torch.stack([u[row, c] for c in corner])
    y = torch.stack([v[row, c] for c in corner])
    return x, y, row


def _clip_polygons(poly: torch.Tensor, count: torch.Tensor, normal: torch.Tensor,
                   offset: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One Sutherland-Hodgman pass: polygons ``[N, P, 3]`` with ``count [N]`` corners
    against the half-spaces ``normal[N] . p + offset >= 0``; returns ``[N, P + 1, 3]``."""
    n, p = poly.shape[:2]
    slot = torch.arange(p, device=poly.device)
    nxt = (slot[None] + 1) % count.clamp(min=1)[:, None]
    dist = (poly * normal[:, None]).sum(-1) + offset
    d_next = dist.gather(1, nxt)
    p_next = poly.gather(1, nxt[..., None].expand(-1, -1, 3))
    live = slot[None] < count[:, None]
    inside = dist >= 0
    crosses = live & (inside != (d_next >= 0))
    t = (dist / torch.where(crosses, dist - d_next, 1.0))[..., None]
    cand = torch.stack([poly, poly + t * (p_next - poly)], 2).reshape(n, 2 * p, 3)
    keep = torch.stack([live & inside, crosses], 2).reshape(n, 2 * p)
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices  # kept first, in order
    out = cand.gather(1, order[..., None].expand(-1, -1, 3))[:, : p + 1]
    new_count = keep.sum(1)
    return out, torch.where(new_count >= 3, new_count, 0)


def _spans(tris: ScreenTriangles, width: int, height: int, index: torch.Tensor | None = None,
           total: int | None = None) -> list[torch.Tensor]:
    """The covered span of every bounding-box row of every triangle, as five ``[R]``
    float64 arrays: first pixel (flat index), pixel count (0 for empty rows), inverse
    depth at the first pixel and its step per pixel, and the triangle's z-buffer rank
    (the low key bits: ``T - 1 - index``, so the lower index wins ties); ``index`` gives
    the triangles' indices when ``tris`` is a selection of ``total = T`` triangles."""
    x, y = tris.x, tris.y
    lo_x, hi_x = _pixel_range(x, width)
    lo_y, hi_y = _pixel_range(y, height)
    ox, oy = lo_x + 0.5, lo_y + 0.5  # centre of the bounding box's first pixel
    orient = torch.sign((x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0]))
    # Edge i runs from corner i + 1 to i + 2; E = a dx + b dy + c at the pixel centre
    # (ox + dx, oy + dy), positive inside for either winding; exact in float64.
    x1, y1, x2, y2 = x.roll(-1, 0), y.roll(-1, 0), x.roll(-2, 0), y.roll(-2, 0)
    a = (y1 - y2) * orient
    b = (x2 - x1) * orient
    c = a * (ox - x1) + b * (oy - y1)
    c += torch.where((a > 0) | ((a == 0) & (b > 0)), _TIE, 0.0)  # top-left rule
    # A horizontal bottom edge (inside above it) excludes the row of centres on it.
    bottom = ((a == 0) & (b < 0)).any(0)
    y_max = torch.maximum(torch.maximum(y[0], y[1]), y[2])
    hi_y = torch.where(bottom, torch.minimum(hi_y, torch.ceil(y_max - 0.5) - 1), hi_y)
    # Along a row, E > 0 <=> dx > w (a > 0, a left edge) or dx < w (a < 0, a right edge)
    # with w = -(b dy + c) / a. The span is [max over left edges of floor(w) + 1, min over
    # right edges of ceil(w) - 1]; with s = -(b dy + c) / |a| both read floor(s) + 1, the
    # second negated. The quotient is never within 2^-18 / |a| of an integer and its
    # rounding error is far below that, so the floors are exact.
    abs_a = torch.where(a == 0, 1.0, a.abs())
    slope, offset = -b / abs_a, -c / abs_a
    slots = []
    for side in (a > 0, a < 0):  # every triangle has one or two edges of each side
        for order in ((0, 1, 2), (2, 1, 0)):  # the first and the last of them
            i, j, k = order
            pick = lambda t: torch.where(side[i], t[i], torch.where(side[j], t[j], t[k]))  # noqa: E731
            slots += [pick(slope), pick(offset)]
    q = tris.inv_depth
    rank = ((len(tris) if total is None else total) - 1) - (
        torch.arange(len(tris), device=x.device) if index is None else index).double()
    per_tri = slots + [
        hi_y - lo_y + 1, hi_x - lo_x,  # rows, last column offset
        ((tris.frame * height + lo_y.long()) * width + lo_x.long()).double(),  # first pixel
        q[0] * ox + q[1] * oy + q[2], q[0], q[1], rank,  # inverse depth at it, its steps
    ]
    # One span per bounding-box row: triangles grouped by row count (padded to a power of
    # two, the extra rows left empty) so each group is a dense [rows, triangles] block of
    # broadcast arithmetic (triangles innermost: long, vectorised inner loops), written
    # straight into one table.
    groups = list(_pow2_groups(per_tri[8], per_tri))
    spans = x.new_empty(5, sum(cap * len(g[0]) for cap, g in groups))
    start = 0
    for cap, g in groups:
        n = len(g[0]) * cap
        _row_spans(g, cap, width, spans[:, start:start + n].view(5, cap, -1))
        start += n
    return list(spans)


def _row_spans(g: list[torch.Tensor], cap: int, width: int, out: torch.Tensor) -> None:
    """Write the spans ``out [5, cap, T]`` of the first ``cap`` rows of triangles with the
    per-triangle values ``g`` of :func:`_spans` (rows past a triangle's last are empty)."""
    col = lambda i: g[i][None]  # noqa: E731  [1, T]
    dy = torch.arange(cap, device=g[0].device, dtype=torch.float64)[:, None]  # [cap, 1]
    bound = [torch.addcmul(col(i + 1), col(i), dy).floor_() for i in (0, 2, 4, 6)]
    first = torch.maximum(bound[0], bound[1]).add_(1).clamp_(min=0)
    last = torch.minimum(torch.maximum(bound[2], bound[3]).neg_().sub_(1), col(9))
    count = (last - first).add_(1).clamp_(min=0).mul_(dy < col(8))
    torch.add(torch.addcmul(col(10), dy, dy.new_tensor(float(width))), first, out=out[0])
    out[1] = count
    torch.addcmul(torch.addcmul(col(11), col(13), dy), col(12), first, out=out[2])
    out[3] = col(12)
    out[4] = col(14)


def _pow2_groups(size: torch.Tensor, values: list[torch.Tensor]):
    """Yield ``(cap, group)``: the ``values`` (arrays ``[N]``) of the items with
    ``cap / 2 < size <= cap``, for each power of two ``cap`` (items with ``size < 1`` are
    left out). One stable sort on a small integer key, then contiguous slices: cheaper on
    CPU than a mask and ``nonzero`` per group."""
    if size.numel() == 0:
        return
    exponent = torch.frexp(size - 1).exponent  # 2^e >= size > 2^(e-1) for size >= 1
    exponent = torch.where(size >= 1, exponent, -1).to(torch.int8)
    counts = torch.bincount(exponent.long() + 1).tolist()
    order = torch.argsort(exponent, stable=True)
    values = [v.index_select(0, order) for v in values]
    start = counts[0]
    for e, n in enumerate(counts[1:]):
        if n:
            yield 1 << e, [v[start:start + n] for v in values]
        start += n


def _scatter_spans(keys: torch.Tensor, spans: list[torch.Tensor], cap: int) -> None:
    """``amax`` the z-buffer keys of spans (see :func:`_spans`) of 1 to ``cap`` pixels
    into ``keys``.

    Key: the bits of the positive float64 inverse depth (ordered like its value, nearer is
    larger) with the low bits replaced by the triangle's rank. Slots past a span's end
    repeat its last pixel (same pixel, same key), which is cheaper than masking them.
    """
    j = torch.arange(cap, device=keys.device, dtype=torch.float64)[:, None]  # [cap, 1]: spans innermost
    j = torch.minimum(j, (spans[1] - 1)[None])
    inv_z = torch.addcmul(spans[2][None], spans[3][None], j)
    key = inv_z.view(torch.int64).bitwise_and_(~_RANK_MASK).bitwise_or_(spans[4].long()[None])
    pix = j.add_(spans[0][None]).long()
    keys.scatter_reduce_(0, pix.reshape(-1), key.reshape(-1), "amax")
