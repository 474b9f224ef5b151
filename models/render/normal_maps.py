"""Camera-space normal maps of a mesh sequence, in the DESIGN.md encoding.

A pixel's normal is the smooth (vertex-interpolated, renormalised) surface normal at its
centre, expressed in the camera's axes with +x right, +y up and +z toward the viewer
(OpenCV camera axes with y and z flipped), encoded ``(n + 1) / 2`` as RGB; background pixels
are ``(0.5, 0.5, 1.0)``, a normal facing the camera. Vertex normals are area-weighted
averages of the faces' normals, so faces must be wound counter-clockwise seen from outside
(``(b - a) x (c - a)`` points out of the surface).

Why the shading is cheap: with ``lam = Q (u, v, 1)`` the unnormalised barycentrics of a
pixel in its face (see :func:`rasterize.face_ray_planes`), the interpolated normal is
``sum_i lam_i N_i / sum(lam)``, so once renormalised it is ``S (u, v, 1)`` with the
per-face ``3 x 3`` matrix ``S = [N_0 N_1 N_2] Q``: nine numbers per pixel, no barycentrics.
``S (u, v, 1)`` is affine in the pixel position, which is also what lets the optional
OpenGL backend interpolate it linearly and get the same normals (up to float32 rounding).
"""
from __future__ import annotations

import torch

from ..camera import CameraTrajectory
from ..errors import InputError
from . import rasterize as rz

BACKGROUND = (0.5, 0.5, 1.0)
BACKENDS = ("torch", "moderngl")


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals ``[F, V, 3]`` of meshes ``[F, V, 3]`` (same dtype).

    Each face adds ``(b - a) x (c - a)`` (twice its area times its unit normal) to its three
    corners; vertices that no face uses get a zero normal. Computed per coordinate on
    contiguous arrays (three times faster than on ``[..., 3]`` rows).
    """
    num_frames, num_verts = vertices.shape[:2]
    faces = faces.to(device=vertices.device, dtype=torch.long)
    offset = (torch.arange(num_frames, device=vertices.device) * num_verts)[:, None]
    corners = [(faces[:, i][None] + offset).reshape(-1) for i in range(3)]
    coords = [vertices[..., c].reshape(-1) for c in range(3)]
    a, b, c = ([t.index_select(0, i) for t in coords] for i in corners)  # [corner][xyz]
    e1 = [b[i] - a[i] for i in range(3)]
    e2 = [c[i] - a[i] for i in range(3)]
    face_n = [e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2], e1[0] * e2[1] - e1[1] * e2[0]]
    normals = vertices.new_zeros(3, num_frames * num_verts)
    for axis in range(3):
        for i in corners:
            normals[axis].index_add_(0, i, face_n[axis])
    length = torch.sqrt(normals[0] * normals[0] + normals[1] * normals[1] + normals[2] * normals[2])
    normals /= length.clamp_(min=torch.finfo(normals.dtype).tiny)
    return normals.T.reshape(num_frames, num_verts, 3)


def render_normal_maps(vertices_world: torch.Tensor, faces: torch.Tensor, camera: CameraTrajectory,
                       width: int, height: int, *, backend: str = "torch",
                       cull_back_faces: bool = False, near: float = rz.DEFAULT_NEAR,
                       frames_per_chunk: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Render camera-space normal maps of a mesh sequence seen by a camera trajectory.

    Args:
        vertices_world: world-space vertices ``[F, V, 3]`` (metres; ``[V, 3]`` is one frame).
        faces: ``[M, 3]`` vertex indices, counter-clockwise seen from outside.
        camera: ``F`` frames, or 1 (a static camera); a 1-frame mesh follows a moving camera.
        width, height: image size in pixels.
        backend: ``"torch"`` (any device) or ``"moderngl"`` (optional, CPU tensors: OpenGL
            draws and shades the same screen triangles; identical masks, normals equal to
            float32 rounding, faster on CPU; see :mod:`moderngl_backend`).
        cull_back_faces: skip faces seen from behind: the same image for closed meshes
            (up to depth ties along the silhouette), somewhat faster.
        near: near-plane depth in metres; nearer geometry is clipped.
        frames_per_chunk: frames rendered at once (bounds memory).
    Returns:
        ``normals [F, H, W, 3]`` float32 in 0..1 (background 0.5, 0.5, 1.0) and
        ``mask [F, H, W]`` float32 (1 on the mesh), on the vertices' device.
    """
    vertices_world, faces = _check_mesh(vertices_world, faces)
    _check_size(width, height)
    if backend not in BACKENDS:
        raise InputError("backend", f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    device = vertices_world.device
    num_frames = rz.broadcast_frames(vertices_world.shape[0], camera.num_frames)
    w2c = camera.w2c.to(device)
    intrinsics = camera.intrinsics(width, height).to(device)
    normals_world = vertex_normals(vertices_world, faces)
    image = torch.empty(num_frames, height, width, 3, device=device)
    mask = torch.empty(num_frames, height, width, device=device)
    for f0 in range(0, num_frames, frames_per_chunk):
        f1 = min(f0 + frames_per_chunk, num_frames)
        mesh_idx = _frame_index(f0, f1, vertices_world.shape[0], device)
        cam_idx = _frame_index(f0, f1, camera.num_frames, device)
        rot, trans = w2c[cam_idx, :3, :3], w2c[cam_idx, :3, 3]
        verts = vertices_world[mesh_idx].double() @ rot.transpose(-1, -2) + trans[:, None]
        # OpenCV camera normals, then flipped to DESIGN.md's y up, z toward the viewer.
        normals = normals_world[mesh_idx].double() @ rot.transpose(-1, -2) * verts.new_tensor([1.0, -1.0, -1.0])
        k = intrinsics[cam_idx]
        planes = rz.face_ray_planes(verts, faces, k)
        if backend == "moderngl":  # drawn and shaded by OpenGL
            image[f0:f1], mask[f0:f1] = _render_moderngl(verts, faces, k, planes, normals, width, height,
                                                         near, cull_back_faces)
            continue
        rows = rz.rasterize_face_ids(verts, faces, k, width, height, near, cull_back_faces,
                                     frames_per_chunk=f1 - f0, planes=planes, flat_index=True)
        n = rz.eval_at_pixels(rows, _normal_planes(planes, normals, faces))  # 3 x [f, H, W]
        length2 = torch.addcmul(torch.addcmul(n[0] * n[0], n[1], n[1]), n[2], n[2]).clamp_(min=1e-30)
        scale = torch.rsqrt(length2).mul_(0.5)  # normals that cancel out (never on a sane mesh) show grey
        for c in range(3):  # strided writes into the channels-last image: faster than stacking
            image[f0:f1, ..., c] = torch.addcmul(scale.new_tensor(0.5), n[c], scale)
        mask[f0:f1] = rows < (f1 - f0) * faces.shape[0]
    return image, mask


def _render_moderngl(verts, faces, k, planes, normals, width, height, near, cull_back_faces):
    """The OpenGL path: the rasterizer's screen triangles, each corner carrying its face's
    ``S (u, v, 1)``, drawn and shaded by :func:`moderngl_backend.render_normals`."""
    from .moderngl_backend import render_normals

    tris = rz.project_faces(verts, faces, k, width, height, near, cull_back_faces, planes)
    s = _normal_planes(planes, normals, faces, torch.float64)
    row = tris.frame * faces.shape[0] + tris.face
    coef = [c.index_select(0, row) for c in s]  # [9][T]
    values = torch.stack([torch.stack([coef[3 * c] * x + coef[3 * c + 1] * y + coef[3 * c + 2] for c in range(3)])
                          for x, y in zip(tris.x, tris.y)])  # [corner, channel, T]
    return render_normals(tris, values, verts.shape[0], width, height, BACKGROUND)


def _normal_planes(q: torch.Tensor, normals: torch.Tensor, faces: torch.Tensor,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Per-face ``S = [N_0 N_1 N_2] Q`` ``[9, F * M + 1]`` from the
    :func:`rasterize.face_ray_planes` ``Q`` and vertex normals ``[F, V, 3]``: ``S (u, v, 1)``
    is the pixel's interpolated normal times its inverse depth (module docstring). The last
    column gives the normal (0, 0, 1) everywhere: background pixels encode to BACKGROUND."""
    num_frames, num_verts = normals.shape[:2]
    offset = (torch.arange(num_frames, device=normals.device) * num_verts)[:, None]
    flat = normals.reshape(-1, 3)
    corner_n = [flat.index_select(0, (faces[:, i][None] + offset).reshape(-1)).T for i in range(3)]
    rows = []
    for c in range(3):  # output channel
        for j in range(3):  # coefficient of u, v, 1
            rows.append(sum(corner_n[i][c] * q[3 * i + j] for i in range(3)))
    background = q.new_tensor([0.0, 0, 0, 0, 0, 0, 0, 0, 1])[:, None]
    return torch.cat([torch.stack(rows), background], 1).to(dtype)


def _frame_index(f0: int, f1: int, length: int, device: torch.device) -> torch.Tensor:
    """Indices of output frames ``f0 .. f1 - 1`` into a sequence of ``length`` (1 broadcasts)."""
    idx = torch.arange(f0, f1, device=device)
    return idx if length > 1 else torch.zeros_like(idx)


def _check_mesh(vertices: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a mesh sequence; returns ``[F, V, 3]`` floating vertices and int64 faces."""
    if not isinstance(vertices, torch.Tensor) or not isinstance(faces, torch.Tensor):
        raise InputError("body_track", "vertices and faces must be tensors.")
    if vertices.dim() == 2:
        vertices = vertices[None]
    if vertices.dim() != 3 or vertices.shape[-1] != 3 or vertices.shape[0] < 1 or vertices.shape[1] < 3:
        raise InputError("body_track", f"vertices must be [frames, vertices, 3], got {tuple(vertices.shape)}.")
    if not vertices.is_floating_point():
        vertices = vertices.double()
    if not torch.isfinite(vertices).all():
        raise InputError("body_track", "vertices contain NaN or infinite values.")
    if faces.dim() != 2 or faces.shape[1] != 3 or faces.shape[0] < 1:
        raise InputError("body_track", f"faces must be [faces, 3] vertex indices, got {tuple(faces.shape)}.")
    if faces.is_floating_point() or faces.dtype == torch.bool:
        raise InputError("body_track", f"faces must be integer vertex indices, got {faces.dtype}.")
    if faces.min() < 0 or faces.max() >= vertices.shape[1]:
        raise InputError("body_track", f"face indices must be in 0..{vertices.shape[1] - 1}, "
                         f"got {int(faces.min())}..{int(faces.max())}.")
    return vertices, faces.to(device=vertices.device, dtype=torch.long)


def _check_size(width: int, height: int) -> None:
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= rz.MAX_IMAGE_SIZE:
            raise InputError(name, f"must be a whole number of pixels in 1..{rz.MAX_IMAGE_SIZE}, got {v!r}.")
