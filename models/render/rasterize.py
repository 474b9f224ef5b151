"""A vectorised z-buffer triangle rasterizer in pure PyTorch (CPU and CUDA).

Conventions (those of :mod:`models.camera.trajectory` and the Plücker rays):

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
Front faces are drawn first; back faces then go through a hierarchical-z test (a pyramid
of 4x4, 8x8... tiles) that skips those certainly hidden, which for a closed mesh is nearly
all of them, so drawing both sides costs little more than culling. On the CPU, what costs
is memory traffic and a few slow kernels, so the code keeps to contiguous float arrays:
per-triangle data is one contiguous array per corner or a row per triangle (row-wise
``index_select`` is fast; ``t[:, index]``, reductions or ``argmax`` over a small
dimension, ``where``, comparisons into bool masks and int64 division are several times
slower than float arithmetic and are avoided in the per-row and per-pixel loops).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..camera.trajectory import CameraTrajectory
from ..errors import InputError
from .screen_triangles import ScreenTriangles, gather_rows

SUBPIXEL = 256.0  # snapping grid: 8 sub-pixel bits, as in GPU rasterizers
# Screen triangles stay within GUARD_BAND pixels of the image centre (further out they are
# clipped): it keeps the float64 arithmetic exact, and inside OpenGL's largest viewport
# (16384 pixels) so the moderngl backend never clips them differently.
GUARD_BAND = 8192.0 - 16.0
MAX_IMAGE_SIZE = 8192
DEFAULT_NEAR = 0.01  # metres
# Edge values are multiples of 2^-16 px²; adding 2^-18 on top-left edges turns their
# "E >= 0" into "E > 0", subtracting it on the others keeps their "E > 0", and together
# they keep every span boundary off the integers (exact floors).
_TIE = 2.0**-18
# z-buffer keys (int64, reduced with amax): the float64 inverse depth's bits (positive
# floats order like their bits) with the low _ID_BITS bits replaced by a rank, T - 1 - the
# triangle's index among T (nearest first, then the lower index). The empty key is the
# smallest int64 with rank T: it loses to every triangle and decodes to "none".
_ID_BITS = 26
_RANK_MASK = (1 << _ID_BITS) - 1
# Cyclic successors of the corners 0, 1, 2: edge i runs from corner _NEXT[i] to _AFTER[i].
_NEXT = (1, 2, 0)
_AFTER = (2, 0, 1)


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
    k = intrinsics.to(device=vertices.device, dtype=torch.float64)
    corner = (faces.T[:, None] + torch.arange(num_frames, device=vertices.device)[:, None] * num_verts).reshape(-1)
    coords = vertices.double().reshape(-1, 3).T.contiguous()  # [3 (xyz), F * V]
    p = gather_rows(coords, corner).view(3, 3, num_frames, -1)  # [xyz, corner, F, M]
    # [A B C]^-1 = rows / det with rows (B x C, C x A, A x B): [xyz, row, F, M]
    u, v = p.index_select(1, _i(_NEXT, p)), p.index_select(1, _i(_AFTER, p))
    rows = torch.empty_like(p)
    for i, (j, k_) in enumerate(((1, 2), (2, 0), (0, 1))):  # cross product component i
        torch.mul(u[j], v[k_], out=rows[i]).sub_(u[k_] * v[j])
    det = torch.addcmul(torch.addcmul(p[0, 0] * rows[0, 0], p[1, 0], rows[1, 0]), p[2, 0], rows[2, 0])
    inv_det = det.reciprocal_().nan_to_num_(posinf=0.0, neginf=0.0)  # [F, M]
    fx, fy, cx, cy = (k[:, i, j, None] for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))  # [F, 1]
    # rows K^-1 / det, K^-1 = [[1/fx, 0, -cx/fx], [0, 1/fy, -cy/fy], [0, 0, 1]]
    q = p.new_empty(3, 3, num_frames, p.shape[-1])  # [row, (u, v, 1), F, M]
    qu = torch.mul(rows[0], inv_det / fx, out=q[:, 0])
    qv = torch.mul(rows[1], inv_det / fy, out=q[:, 1])
    torch.mul(rows[2], inv_det, out=q[:, 2]).addcmul_(qu, -cx).addcmul_(qv, -cy)
    return q.view(9, -1)


def _i(index: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """``index`` as an int64 tensor on ``like``'s device."""
    return torch.tensor(index, device=like.device)


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
        the triangles whose bounding box holds a pixel centre they may cover, ordered by
        frame then face (the order that decides exact depth ties).
    """
    num_frames, num_verts = vertices.shape[:2]
    num_faces = faces.shape[0]
    device = vertices.device
    k = intrinsics.to(device=device, dtype=torch.float64)
    if planes is None:
        planes = face_ray_planes(vertices, faces, k)
    # Project, test and snap every vertex once, then gather the corners.
    px, py, pz = vertices.double().unbind(-1)  # [F, V] each
    inv_z = 1.0 / torch.where(pz == 0, 1e-30, pz)  # z = 0 only occurs on faces that get clipped
    u = k[:, 0, 0, None] * px * inv_z + k[:, 0, 2, None]
    v = k[:, 1, 1, None] * py * inv_z + k[:, 1, 2, None]
    in_front = pz >= near
    in_band = torch.maximum((u - width / 2).abs(), (v - height / 2).abs()) <= GUARD_BAND
    corner = (faces.T[:, None] + torch.arange(num_frames, device=device)[:, None] * num_verts).reshape(-1)
    gather = lambda t: t.reshape(-1).index_select(0, corner).view(3, -1)  # noqa: E731  [F, V] -> [3, F * M]
    frame = torch.arange(num_frames, device=device).repeat_interleave(num_faces)
    face = torch.arange(num_faces, device=device).repeat(num_frames)
    inv_depth = planes[0:3] + planes[3:6] + planes[6:9]  # 1 / z = sum(lam)
    tris = ScreenTriangles(gather(_snap(u)), gather(_snap(v)), frame, face, inv_depth)
    ok = gather(in_front & in_band)
    simple = ok[0] & ok[1] & ok[2]  # (faster than .all(0))
    if not bool(simple.all()):  # clip the few faces crossing the near plane or guard band
        front = gather(in_front)
        partly = ((front[0] | front[1] | front[2]) & ~simple).nonzero()[:, 0]
        corners = vertices.double().reshape(-1, 3).index_select(0, corner.view(3, -1)[:, partly].T.reshape(-1))
        cx_, cy_, row = _clip(corners.view(-1, 3, 3), k, frame.index_select(0, partly), near, width, height)
        kept, src = simple.nonzero()[:, 0], partly.index_select(0, row)
        clipped = tris.select(src)
        tris = tris.select(kept)
        tris = ScreenTriangles(torch.cat([tris.x, _snap(cx_)], 1), torch.cat([tris.y, _snap(cy_)], 1),
                               torch.cat([tris.frame, clipped.frame]), torch.cat([tris.face, clipped.face]),
                               torch.cat([tris.inv_depth, clipped.inv_depth], 1))
        tris = tris.select(torch.argsort(torch.cat([kept, src]), stable=True))  # frame, face order
    x, y = tris.x, tris.y
    area2 = (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0])
    keep = area2 < 0 if cull_back_faces else area2 != 0  # seen from outside = clockwise
    box = _boxes(x, y, width, height)
    keep &= (box[1] >= box[0]) & (box[3] >= box[2])
    return ScreenTriangles(x, y, tris.frame, tris.face, tris.inv_depth, box).select(keep.nonzero()[:, 0])


def rasterize_faces(tris: ScreenTriangles, num_frames: int, width: int, height: int) -> torch.Tensor:
    """The front-most screen triangle of every pixel ``[F, H, W]`` (int64 index into
    ``tris``, -1 where none): the z-buffer of :func:`rasterize`."""
    return (len(tris) - 1) - _rank_image(tris, num_frames, width, height)


def _rank_image(tris: ScreenTriangles, num_frames: int, width: int, height: int) -> torch.Tensor:
    """The z-buffer: the rank ``T - 1 - index`` of every pixel's front-most triangle, or
    ``T`` where none ``[F, H, W]`` (int64)."""
    return _zbuffer(tris, num_frames, width, height).bitwise_and_(_RANK_MASK).reshape(num_frames, height, width)


def _empty_key(count: int) -> int:
    """The z-buffer key of an empty pixel among ``count`` triangles (decodes to rank T)."""
    return torch.iinfo(torch.int64).min + count


def _zbuffer(tris: ScreenTriangles, num_frames: int, width: int, height: int) -> torch.Tensor:
    """The z-buffer keys of the screen triangles ``[F * H * W]`` (int64, see _ID_BITS)."""
    count = len(tris)
    if count >= 1 << _ID_BITS:
        raise ValueError(f"more than {1 << _ID_BITS} screen triangles in one batch; use fewer frames per chunk")
    keys = torch.full((num_frames * height * width,), _empty_key(count), dtype=torch.int64, device=tris.x.device)
    x, y = tris.x, tris.y
    front = (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0]) < 0  # clockwise
    n_front = int(front.sum())
    if n_front == count:
        _draw(keys, tris, None, -1.0, width, height)
    elif n_front == 0:
        _draw(keys, tris, None, 1.0, width, height)
    else:  # front faces first, then the back faces they do not hide
        _draw(keys, tris, front.nonzero()[:, 0], -1.0, width, height)
        back = (~front).nonzero()[:, 0]
        _draw(keys, tris, back[~_hidden(keys, tris, back, num_frames, width, height)], 1.0, width, height)
    return keys


def _draw(keys: torch.Tensor, tris: ScreenTriangles, index: torch.Tensor | None, orient: float, width: int,
          height: int) -> None:
    """Z-buffer the screen triangles ``index`` (all if None) into ``keys``; ``orient`` is the
    sign of their doubled signed area (-1: clockwise, the front faces; 1: back faces)."""
    if index is None:
        index = torch.arange(len(tris), device=keys.device)
    elif index.numel() == 0:
        return
    rank = ((len(tris) - 1) - index).double()  # the low key bits: the lower index wins ties
    spans = _spans(tris.select(index) if len(index) < len(tris) else tris, rank, orient, width, height)
    for cap, group in _span_groups(spans):
        _scatter_spans(keys, group, cap)


def _hidden(keys: torch.Tensor, tris: ScreenTriangles, index: torch.Tensor, num_frames: int, width: int,
            height: int) -> torch.Tensor:
    """Which of the triangles ``index`` are certainly behind what the z-buffer holds at every
    pixel of their bounding box ``[len(index)]`` (bool): conservative, so skipping them
    changes no pixel.

    A hierarchical-z test: a pyramid of tiles (4x4 pixels, 8x8, 16x16...) keeps the smallest
    inverse depth in the z-buffer (0 if a pixel is empty), and a triangle is hidden when its
    largest inverse depth (at a corner: it is affine on the triangle) is below that of the
    2x2 tiles of the finest level that hold its bounding box. For a closed mesh this removes
    nearly every back face, leaving those along the silhouette, which may show through gaps
    (open meshes) or not.
    """
    levels = _depth_pyramid(keys, num_frames, width, height)
    t = tris.select(index)
    q = t.inv_depth
    near = torch.amax(q[0] * t.x + q[1] * t.y + q[2], 0)  # [T]: the largest inverse depth
    box = t.box.long() >> 2  # in tiles of the finest level
    extent = torch.maximum(box[1] - box[0], box[3] - box[2])
    # At level L a box of extent <= 2^L finest tiles lies within 2x2 tiles.
    level = _pow2_exponent(extent.double()).clamp_(0, len(levels) - 1)
    sizes = torch.tensor([[lv.shape[1] * lv.shape[2], lv.shape[2]] for lv in levels], device=keys.device)
    offset = torch.tensor([0] + [lv.numel() for lv in levels], device=keys.device).cumsum(0)
    area, row = sizes.index_select(0, level).T
    base = offset.index_select(0, level) + t.frame * area
    x0, x1, y0, y1 = (b >> level for b in box)
    flat = torch.cat([lv.reshape(-1) for lv in levels])
    farthest = torch.minimum(
        torch.minimum(flat.index_select(0, base + y0 * row + x0), flat.index_select(0, base + y0 * row + x1)),
        torch.minimum(flat.index_select(0, base + y1 * row + x0), flat.index_select(0, base + y1 * row + x1)))
    # The margin covers the truncated key bits (< 1e-7 relative).
    return near * (1 + 1e-5) < farthest


def _depth_pyramid(keys: torch.Tensor, num_frames: int, width: int, height: int) -> list[torch.Tensor]:
    """The smallest inverse depth in the z-buffer ``keys`` over tiles of 4x4 pixels, then
    8x8, ... up to a level of at most 2x2 tiles: ``[F, h, w]`` float64 each, 0 where a tile
    holds an empty pixel (or reaches past the image). Minima of strided slices: several
    times faster than ``max_pool2d`` on CPU."""
    h, w = -(-height // 4), -(-width // 4)
    # Keys order like the float64 inverse depth they hold; an empty key reads as a float
    # <= 0. As floats, these minima are vectorised (int64 ones are many times slower).
    k = keys.view(torch.float64).view(num_frames, height, width)
    if (h * 4, w * 4) != (height, width):  # pad with empty pixels
        k = torch.nn.functional.pad(k, (0, w * 4 - width, 0, h * 4 - height))
    k = k.view(num_frames, h, 4, w * 4).amin(2)  # [F, h, 4 w]: minima of 4 rows
    k = torch.minimum(k[..., 0::2], k[..., 1::2])
    k = torch.minimum(k[..., 0::2], k[..., 1::2])  # [F, h, w]
    levels = [k.clamp_(min=0)]
    while max(levels[-1].shape[1:]) > 2:
        lv = levels[-1]
        lv = torch.nn.functional.pad(lv, (0, lv.shape[2] % 2, 0, lv.shape[1] % 2))  # 0: conservative
        levels.append(torch.minimum(torch.minimum(lv[:, 0::2, 0::2], lv[:, 0::2, 1::2]),
                                    torch.minimum(lv[:, 1::2, 0::2], lv[:, 1::2, 1::2])))
    return levels


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


def rasterize_pixels(vertices: torch.Tensor, faces: torch.Tensor, intrinsics: torch.Tensor, width: int,
                     height: int, near: float = DEFAULT_NEAR, cull_back_faces: bool = False,
                     planes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The covered pixels of ``F`` frames and their front-most faces: the sparse form of
    :func:`rasterize_face_ids` (torch backend, all frames in one batch), for per-pixel work
    that skips the background.

    Arguments as :func:`rasterize_face_ids`.
    Returns:
        ``covered [F, H, W]`` (bool); ``pixel [N]``: the flat indices of the covered pixels
        into ``[F, H, W]`` (ascending); ``face [N]``: their front-most face as
        ``f * M + face`` for frame ``f`` (int64).
    """
    if not (1 <= width <= MAX_IMAGE_SIZE and 1 <= height <= MAX_IMAGE_SIZE):
        raise ValueError(f"image size {width}x{height} is outside 1..{MAX_IMAGE_SIZE}")
    faces = faces.to(device=vertices.device, dtype=torch.long)
    tris = project_faces(vertices, faces, intrinsics.to(vertices.device), width, height, near, cull_back_faces,
                         planes)
    keys = _zbuffer(tris, vertices.shape[0], width, height)
    covered = keys > _empty_key(len(tris))
    pixel = covered.nonzero()[:, 0]
    index = (len(tris) - 1) - keys.index_select(0, pixel).bitwise_and_(_RANK_MASK)
    face = (tris.frame * faces.shape[0] + tris.face).index_select(0, index)
    return covered.view(vertices.shape[0], height, width), pixel, face


def rasterize_depth(vertices: torch.Tensor, faces: torch.Tensor, intrinsics: torch.Tensor, width: int,
                    height: int, near: float = DEFAULT_NEAR, frames_per_chunk: int = 4) -> torch.Tensor:
    """Depth of the front-most surface at every pixel centre ``[F, H, W]`` (float32 metres,
    0 on background), read from the z-buffer's own keys: their high bits are the float64
    inverse depth (relative precision 2^-26, far below float32's), so no barycentrics are
    computed. For depth and coverage only, several times faster than :func:`rasterize`.

    Arguments as :func:`rasterize` (torch backend, both windings drawn).
    """
    if not (1 <= width <= MAX_IMAGE_SIZE and 1 <= height <= MAX_IMAGE_SIZE):
        raise ValueError(f"image size {width}x{height} is outside 1..{MAX_IMAGE_SIZE}")
    faces = faces.to(device=vertices.device, dtype=torch.long)
    intrinsics = intrinsics.to(vertices.device)
    out = []
    for f0 in range(0, vertices.shape[0], frames_per_chunk):
        f1 = min(f0 + frames_per_chunk, vertices.shape[0])
        tris = project_faces(vertices[f0:f1], faces, intrinsics[f0:f1], width, height, near, False)
        keys = _zbuffer(tris, f1 - f0, width, height)
        covered = keys > _empty_key(len(tris))
        inverse = keys.bitwise_and(~_RANK_MASK).view(torch.float64)
        depth = torch.where(covered, 1.0 / torch.where(covered, inverse, 1.0), 0.0)
        out.append(depth.float().view(f1 - f0, height, width))
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
    hit, values = interpolate_covered(fragments, attributes, faces)
    out = attributes.new_zeros(num_frames * height * width, attributes.shape[-1])
    out.index_copy_(0, hit, values)
    return out.reshape(num_frames, height, width, -1)


def interpolate_covered(fragments: Fragments, attributes: torch.Tensor,
                        faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The sparse form of :func:`interpolate`: the covered pixels' flat indices into
    ``[F, H, W]`` ``[N]`` (int64, ascending) and the attributes there ``[N, C]``, for
    per-pixel work that skips the background."""
    hit, rows, bary = covered_corners(fragments, faces, attributes.shape[1])
    return hit, blend_rows(attributes.reshape(-1, attributes.shape[-1]), rows, bary)


def covered_corners(fragments: Fragments, faces: torch.Tensor,
                    num_vertices: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For the covered pixels (flat indices into ``[F, H, W]`` ``[N]``, ascending): the rows
    of their face's corners in frame-stacked per-vertex arrays ``[F * V, C]`` ``[N, 3]`` and
    their barycentrics ``[N, 3]``, to interpolate several attribute sets, or a subset of the
    pixels, with :func:`blend_rows`."""
    num_frames, height, width = fragments.face_id.shape
    flat = fragments.face_id.reshape(-1)
    hit = (flat >= 0).nonzero()[:, 0]
    frame = hit // (height * width)
    corners = faces.to(flat.device, torch.long).index_select(0, flat.index_select(0, hit))
    return hit, corners + frame[:, None] * num_vertices, fragments.bary.reshape(-1, 3).index_select(0, hit)


def blend_rows(values: torch.Tensor, rows: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """``sum_i bary[n, i] * values[rows[n, i]]`` ``[N, C]`` for ``values [R, C]``."""
    corners = values.index_select(0, rows.reshape(-1)).reshape(-1, 3, values.shape[-1])
    return torch.bmm(bary.to(values.dtype)[:, None], corners)[:, 0]


def _snap(coord: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates rounded to the 1/SUBPIXEL grid."""
    return torch.round(coord * SUBPIXEL) / SUBPIXEL


def _pixel_range(lo: torch.Tensor, hi: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last pixel index whose centre lies within ``lo .. hi`` ``[T]``, clipped to
    ``0 .. size - 1`` (float64; empty where ``last < first``)."""
    return torch.ceil(lo - 0.5).clamp_(min=0), torch.floor(hi - 0.5).clamp_(max=size - 1)


def _boxes(x: torch.Tensor, y: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """First and last column, first and last row of the pixels whose centre snapped
    triangles ``x, y [3, T]`` may cover ``[4, T]`` (float64, clipped to the image; empty
    where last < first). A horizontal bottom edge (two corners lowest) leaves out the row of
    centres on it: by the top-left rule they are outside."""
    lo_x, hi_x = _pixel_range(x.amin(0), x.amax(0), width)
    y_min, y_max = y.amin(0), y.amax(0)
    lo_y, hi_y = _pixel_range(y_min, y_max, height)
    y_mid = y.sum(0).sub_(y_min).sub_(y_max)  # exact: multiples of 1/256 below 2^15
    hi_y = torch.where(y_mid == y_max, torch.minimum(hi_y, torch.ceil(y_max - 0.5) - 1), hi_y)
    return torch.stack([lo_x, hi_x, lo_y, hi_y])


def _pow2_exponent(n: torch.Tensor) -> torch.Tensor:
    """The smallest ``e >= 0`` with ``n <= 2^e`` for whole numbers ``n >= 1`` (float64), and a
    negative number for ``n = 0`` (int64): the float exponent of ``n - 0.5``, read from its
    bits (much cheaper than ``frexp``)."""
    return ((n - 0.5).view(torch.int64) >> 52) - 1022


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


def _spans(tris: ScreenTriangles, rank: torch.Tensor, orient: float, width: int, height: int) -> torch.Tensor:
    """The covered span of every bounding-box row of every triangle ``[5, R]`` (float64):
    first pixel (flat index), pixel count (0 for empty rows), inverse depth at the first
    pixel and its step per pixel, and the triangle's z-buffer rank (``rank [T]``). All
    triangles have the orientation ``orient`` (the sign of their doubled signed area)."""
    x, y = tris.x, tris.y
    lo_x, hi_x, lo_y, hi_y = tris.box
    ox, oy = lo_x + 0.5, lo_y + 0.5  # centre of the bounding box's first pixel
    nxt, after = _i(_NEXT, x), _i(_AFTER, x)
    x1, y1, x2, y2 = x.index_select(0, nxt), y.index_select(0, nxt), x.index_select(0, after), y.index_select(0, after)
    # E = a dx + b dy + c at the pixel centre (ox + dx, oy + dy) for each edge, positive
    # inside: exact in float64 (multiples of 2^-16 px^2).
    a, b = (y1 - y2, x2 - x1) if orient > 0 else (y2 - y1, x1 - x2)
    c = torch.addcmul(a * (ox - x1), b, oy - y1)
    # Top-left rule: +2^-18 on the edges that own the centres on them, -2^-18 on the others:
    # E > 0 decides, and E is never 0. Owners are left edges (a > 0) and top edges (a = 0,
    # b > 0), i.e. a + b 2^-24 > 0 (a is a multiple of 2^-8 and |b| < 2^15).
    c.add_(torch.add(a, b, alpha=2.0**-24).sign_(), alpha=_TIE)
    # Along a row, E > 0 <=> dx > s on a left edge (a > 0) and dx < -s on a right edge
    # (a < 0), with s = -(b dy + c) / |a|: the span is [max over left edges of floor(s) + 1,
    # min over right edges of ceil(-s) - 1] = [floor(max s + 1), floor(min -s)]. s is never
    # within 2^-18 / |a| of an integer and its rounding error is far below that, so the
    # floors are exact. (Horizontal edges give infinities here; they are never picked.)
    inv_a = a.abs().reciprocal_().neg_()
    per_edge = torch.stack([b * inv_a, c * inv_a])  # [(slope, offset), 3 edges, T]
    # The largest a is a left edge, the smallest a right one; the third is left, right or
    # horizontal. Slots (left, left, right, right) hold them, an edge twice if it is alone.
    hi, lo = _argmax3(a), _argmax3(-a)
    mid = 3 - hi - lo
    a_mid = a.gather(0, mid[None])[0]
    slots = torch.stack([hi, torch.where(a_mid > 0, mid, hi), lo, torch.where(a_mid < 0, mid, lo)])
    s = per_edge.gather(1, slots.expand(2, -1, -1))  # [(slope, offset), 4 slots, T]
    s[1, :2] += 1  # left edges: floor(s + 1)
    s[:, 2:].neg_()  # right edges: floor(-s)
    q = tris.inv_depth
    first_pixel = torch.addcmul(lo_y, tris.frame.double(), lo_y.new_tensor(float(height))).mul_(width).add_(lo_x)
    per_tri = torch.cat([s.reshape(8, -1), torch.stack([
        hi_y - lo_y + 1, hi_x - lo_x, first_pixel,  # rows, last column, first pixel (exact)
        q[0] * ox + q[1] * oy + q[2], q[0], q[1], rank,  # inverse depth there, its steps; rank
    ])]).T.contiguous()  # [T, 15]: one row per triangle, gathered at once
    # One span per bounding-box row: triangles grouped by row count (padded to a power of
    # two, the extra rows left empty) so each group is a dense [rows, triangles] block of
    # broadcast arithmetic, written straight into one table.
    order, groups = _pow2_groups(_pow2_exponent(per_tri[:, 8]))
    per_tri = per_tri.index_select(0, order)
    spans = x.new_empty(5, sum(cap * (end - start) for cap, start, end in groups))
    at = 0
    for cap, start, end in groups:
        n = (end - start) * cap
        _row_spans(per_tri[start:end], cap, width, spans[:, at:at + n].view(5, cap, -1))
        at += n
    return spans


def _argmax3(v: torch.Tensor) -> torch.Tensor:
    """``v.argmax(0)`` for ``v [3, T]`` by two comparisons (``argmax`` over a leading
    dimension is several times slower on CPU)."""
    first = (v[1] > v[0]).long()
    return torch.where(v[2] > torch.maximum(v[0], v[1]), 2, first)


def _row_spans(g: torch.Tensor, cap: int, width: int, out: torch.Tensor) -> None:
    """Write the spans ``out [5, cap, T]`` of the first ``cap`` rows of triangles with the
    per-triangle values ``g [T, 15]`` of :func:`_spans` (rows past a triangle's last are empty).
    Float arithmetic only: comparisons and bool masks are several times slower on CPU."""
    col = g.T.contiguous()  # [15, T]: col[i] broadcasts over the rows (contiguous: vectorised loops)
    dy = torch.arange(cap, device=g.device, dtype=torch.float64)[:, None]  # [cap, 1]
    first = torch.maximum(torch.addcmul(col[4], col[0], dy), torch.addcmul(col[5], col[1], dy)).floor_().clamp_(min=0)
    last = torch.minimum(torch.addcmul(col[6], col[2], dy), torch.addcmul(col[7], col[3], dy)).floor_()
    count = torch.minimum(last, col[9], out=out[1]).sub_(first).add_(1)
    torch.minimum(count, (col[8] - dy).mul_(width), out=count).clamp_(min=0)  # rows past the last: <= 0
    torch.add(torch.addcmul(col[10], dy, dy.new_tensor(float(width))), first, out=out[0])
    torch.addcmul(torch.addcmul(col[11], col[13], dy), col[12], first, out=out[2])
    out[3] = col[12]
    out[4] = col[14]


def _span_groups(spans: torch.Tensor):
    """Yield ``(cap, group)``: the spans ``[5, n]`` of ``cap / 2 < length <= cap`` pixels for
    each power of two ``cap`` (empty spans left out)."""
    order, sizes = _pow2_groups(_pow2_exponent(spans[1]))
    spans = gather_rows(spans, order)
    for cap, start, end in sizes:
        yield cap, spans[:, start:end]


def _pow2_groups(exponent: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, int, int]]]:
    """Group items by their (small, int64) ``exponent``: the indices of the items with
    ``exponent >= 0`` sorted by it ``[N']``, and per exponent ``e`` present ``(2^e, start,
    end)``, their slice of that order. One sort on an int8 key, then contiguous slices:
    cheaper on CPU than a mask and ``nonzero`` per group."""
    exponent, order = torch.sort(exponent.clamp_(min=-1).to(torch.int8))
    if exponent.numel() == 0:
        return order, []
    bounds = torch.searchsorted(exponent, torch.arange(-1, int(exponent[-1]) + 2, dtype=torch.int8,
                                                       device=exponent.device)).tolist()
    skip = bounds[1]
    groups = [(1 << e, start - skip, end - skip) for e, (start, end) in enumerate(zip(bounds[1:], bounds[2:]))
              if end > start]
    return order[skip:], groups


def _scatter_spans(keys: torch.Tensor, spans: torch.Tensor, cap: int) -> None:
    """``amax`` the z-buffer keys of spans ``[5, n]`` (see :func:`_spans`) of 1 to ``cap``
    pixels into ``keys``.

    Key: the bits of the positive float64 inverse depth (ordered like its value, nearer is
    larger) with the low bits replaced by the triangle's rank. Slots past a span's end
    repeat its last pixel (same pixel, same key), which is cheaper than masking them.
    """
    first, count, inv_z0, step, rank = spans
    if cap == 1:  # the most common span: one pixel
        key = inv_z0.view(torch.int64).bitwise_and(~_RANK_MASK).bitwise_or_(rank.long())
        keys.scatter_reduce_(0, first.long(), key, "amax")
        return
    j = torch.arange(cap, device=keys.device, dtype=torch.float64)[:, None]  # [cap, 1]: spans innermost
    j = torch.minimum(j, (count - 1)[None])
    inv_z = torch.addcmul(inv_z0[None], step[None], j)
    key = inv_z.view(torch.int64).bitwise_and_(~_RANK_MASK).bitwise_or_(rank.long()[None])
    pix = j.add_(first[None]).long()
    keys.scatter_reduce_(0, pix.reshape(-1), key.reshape(-1), "amax")
