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
Only covered pixels are shaded (a quarter of the image for a portrait), and on the CPU
chunks of frames render side by side on threads (see :func:`_run_chunks`).
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from ..camera.trajectory import CameraTrajectory
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
        frames_per_chunk: frames rendered at once by one thread (bounds memory).
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
    static = vertex_normals(vertices_world, faces) if vertices_world.shape[0] == 1 else None  # else per chunk
    image = torch.empty(num_frames, height, width, 3, device=device)
    mask = torch.empty(num_frames, height, width, device=device)

    def render(f0: int, f1: int) -> None:
        mesh_idx = _frame_index(f0, f1, vertices_world.shape[0], device)
        cam_idx = _frame_index(f0, f1, camera.num_frames, device)
        rot, trans = w2c[cam_idx, :3, :3], w2c[cam_idx, :3, 3]
        verts = vertices_world[mesh_idx].double() @ rot.transpose(-1, -2) + trans[:, None]
        normals_world = static[mesh_idx] if static is not None else vertex_normals(vertices_world[f0:f1], faces)
        # OpenCV camera normals, then flipped to DESIGN.md's y up, z toward the viewer.
        normals = normals_world.double() @ rot.transpose(-1, -2) * verts.new_tensor([1.0, -1.0, -1.0])
        k = intrinsics[cam_idx]
        planes = rz.face_ray_planes(verts, faces, k)
        if backend == "moderngl":  # drawn and shaded by OpenGL
            image[f0:f1], mask[f0:f1] = _render_moderngl(verts, faces, k, planes, normals, width, height,
                                                         near, cull_back_faces)
            return
        covered, pixel, face = rz.rasterize_pixels(verts, faces, k, width, height, near, cull_back_faces, planes)
        colour = _shade(pixel, _normal_planes(planes, normals, faces).index_select(0, face), width, height)
        _fill(image[f0:f1].view(-1, 3), BACKGROUND).index_copy_(0, pixel, colour)
        mask[f0:f1] = covered

    chunks = [(f0, min(f0 + frames_per_chunk, num_frames)) for f0 in range(0, num_frames, frames_per_chunk)]
    concurrent = backend == "torch" and device.type == "cpu"  # an OpenGL context stays in its thread
    _run_chunks(render, chunks, torch.get_num_threads() if concurrent else 1)
    return image, mask


def _run_chunks(fn: Callable[[int, int], None], chunks: list[tuple[int, int]], workers: int) -> None:
    """``fn(f0, f1)`` for every chunk of frames, on ``workers`` threads at once when above 1.

    Why threads: the chunks are independent and their torch ops release the GIL, so
    single-threaded chunks side by side keep every core busy, whereas intra-op parallelism
    splits each mid-sized op and waits for all threads after it (which stalls for
    milliseconds when another process holds a core). Each worker runs one intra-op thread
    in the caller's grad / inference mode; the caller's thread count is restored after.
    """
    workers = min(workers, len(chunks))
    if workers <= 1:
        for f0, f1 in chunks:
            fn(f0, f1)
        return
    threads, grad, inference = torch.get_num_threads(), torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def work(chunk: tuple[int, int]) -> None:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            fn(*chunk)

    try:  # one intra-op thread per worker (it also becomes the default for new threads)
        with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            for _ in pool.map(work, chunks):
                pass
    finally:
        torch.set_num_threads(threads)


def _shade(pixel: torch.Tensor, s: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Encoded normals ``[N, 3]`` (float32) at the flat pixel indices ``pixel [N]`` into
    ``[F, H, W]``, from their faces' ``S`` ``[N, 9]`` (:func:`_normal_planes`)."""
    p = pixel.double()  # float64 division and floors are exact here and faster than int64 ones
    row = (p / width).floor_()
    u = torch.addcmul(p, row, p.new_tensor(-float(width))).to(s.dtype).add_(0.5)[:, None]  # centres, [N, 1]
    v = torch.addcmul(row, (row / height).floor_(), row.new_tensor(-float(height))).to(s.dtype).add_(0.5)[:, None]
    s = s.view(-1, 3, 3)  # [N, channel, (u, v, 1)]
    n = torch.addcmul(torch.addcmul(s[:, :, 2], s[:, :, 0], u), s[:, :, 1], v)  # [N, 3]
    x, y, z = n.unbind(1)
    length2 = torch.addcmul(torch.addcmul(x * x, y, y), z, z).clamp_(min=1e-30)
    scale = torch.rsqrt(length2).mul_(0.5)[:, None]  # normals that cancel out (never on a sane mesh) show grey
    return n.mul_(scale).add_(0.5)


def _fill(image: torch.Tensor, colour: tuple[float, ...]) -> torch.Tensor:
    """Fill the pixels ``[P, C]`` with ``colour`` (one contiguous fill, then the channels
    that differ: faster than a broadcast copy); returns ``image``."""
    image.fill_(colour[0])
    for c, value in enumerate(colour[1:], 1):
        if value != colour[0]:
            image[:, c].fill_(value)
    return image


def _render_moderngl(verts, faces, k, planes, normals, width, height, near, cull_back_faces):
    """The OpenGL path: the rasterizer's screen triangles, each corner carrying its face's
    ``S (u, v, 1)``, drawn and shaded by :func:`moderngl_backend.render_normals`."""
    from .moderngl_backend import render_normals

    tris = rz.project_faces(verts, faces, k, width, height, near, cull_back_faces, planes)
    row = tris.frame * faces.shape[0] + tris.face
    coef = _normal_planes(planes, normals, faces, torch.float64).index_select(0, row).T  # [9, T]
    values = torch.stack([torch.stack([coef[3 * c] * x + coef[3 * c + 1] * y + coef[3 * c + 2] for c in range(3)])
                          for x, y in zip(tris.x, tris.y)])  # [corner, channel, T]
    return render_normals(tris, values, verts.shape[0], width, height, BACKGROUND)


def _normal_planes(q: torch.Tensor, normals: torch.Tensor, faces: torch.Tensor,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Per-face ``S = [N_0 N_1 N_2] Q`` ``[F * M, 9]`` (row-major, one row per face: a
    pixel gathers its nine numbers at once) from the :func:`rasterize.face_ray_planes` ``Q``
    and vertex normals ``[F, V, 3]``: ``S (u, v, 1)`` is the pixel's interpolated normal
    times its inverse depth (module docstring)."""
    num_frames, num_verts = normals.shape[:2]
    offset = (torch.arange(num_frames, device=normals.device) * num_verts)[:, None]
    flat = normals.reshape(-1, 3)
    corner_n = [flat.index_select(0, (faces[:, i][None] + offset).reshape(-1)).T for i in range(3)]
    out = torch.empty(q.shape[1], 9, dtype=dtype, device=q.device)
    for c in range(3):  # output channel; in float64 (the terms may cancel), then rounded
        n0, n1, n2 = (corner_n[i][c].to(q.dtype) for i in range(3))
        for j in range(3):  # coefficient of u, v, 1
            out[:, 3 * c + j] = torch.addcmul(torch.addcmul(n0 * q[j], n1, q[3 + j]), n2, q[6 + j])
    return out


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
