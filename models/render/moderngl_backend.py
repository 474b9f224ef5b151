"""Optional OpenGL backend of the rasterizer: moderngl on a headless EGL context.

It draws the very :class:`~screen_triangles.ScreenTriangles` of the PyTorch rasterizer (projected,
clipped and snapped by it), so coverage, occlusion and the fill rule are the same:

- Corners are passed already divided by depth (``w = 1``) at their snapped pixel
  positions, through OpenGL's largest viewport (16384 pixels, a power of two) centred on
  the image, so the float32 viewport transform reproduces them exactly, OpenGL's own
  1/256-pixel snapping changes nothing, and no triangle reaches its clip volume (the
  rasterizer's guard band lies inside it; clipping there would move edges slightly).
  Pixel centres are at ``+0.5`` in OpenGL too, image row ``v`` is OpenGL window row ``v``
  (the read-back comes out top row first without a flip), and Mesa's fill rule in these
  window coordinates is the rasterizer's top-left rule.
- Depth is the inverse depth, affine in screen space, so OpenGL's linear interpolation
  of ``gl_Position.z`` equals the rasterizer's plane evaluation; only where two surfaces
  are within ~1e-7 of each other in depth (interpenetrating triangles) can the depth
  buffer's rounding pick the other one. Exact ties go to the first-drawn triangle
  (``GL_LESS``), the lower index, as in the PyTorch z-buffer.

Two uses: :func:`rasterize_faces` returns the front-most triangle per pixel (then the
shared PyTorch code computes barycentrics and shading: bit-identical results), and
:func:`render_normals` also shades in OpenGL, which is the fast path: each corner carries
``S (u, v, 1)`` of its face (see :mod:`normal_maps`), an affine function of the pixel
position, so OpenGL's screen-linear interpolation gives the same value as the PyTorch
evaluation up to float32 rounding, and the shader normalises and encodes it.

Needs ``pip install moderngl`` and an EGL driver (``libEGL`` plus Mesa's ``libEGL_mesa`` /
``libgl1-mesa-dri`` for the llvmpipe software rasterizer, or a GPU driver).
"""
from __future__ import annotations

import threading

import numpy as np
import torch

from .screen_triangles import ScreenTriangles

_ID_VERTEX_SHADER = """
#version 330
in vec3 in_pos;
void main() { gl_Position = vec4(in_pos, 1.0); }
"""
_VERTEX_SHADER = """
#version 330
in vec3 in_pos;
in vec3 in_value;
noperspective out vec3 value;
void main() { gl_Position = vec4(in_pos, 1.0); value = in_value; }
"""
_ID_SHADER = """
#version 330
out float primitive;
void main() { primitive = float(gl_PrimitiveID + 1); }
"""
_NORMAL_SHADER = """
#version 330
noperspective in vec3 value;
layout(location = 0) out vec3 colour;
layout(location = 1) out float covered;
void main() { colour = normalize(value) * 0.5 + 0.5; covered = 1.0; }
"""
_VIEWPORT = 16384  # GL_MAX_VIEWPORT_DIMS of Mesa; the rasterizer's GUARD_BAND fits inside
_lock = threading.Lock()
_state: dict = {}


def is_available() -> tuple[bool, str]:
    """Whether the backend can run here, and why not."""
    try:
        _context()
    except Exception as err:  # noqa: BLE001 - any import or driver failure means unavailable
        return False, f"{type(err).__name__}: {err}"
    return True, ""


def rasterize_faces(tris: ScreenTriangles, num_frames: int, width: int, height: int) -> torch.Tensor:
    """The front-most screen triangle of every pixel ``[F, H, W]`` (int64 index into
    ``tris``, -1 where none), drawn by OpenGL; same contract as
    :func:`rasterize.rasterize_faces`."""
    out = np.full((num_frames, height, width), -1, dtype=np.int64)
    ids = np.empty((height, width), dtype=np.float32)
    for f, lo, fbo in _draw(tris, None, num_frames, width, height, "ids"):
        fbo.read_into(ids, viewport=(0, 0, width, height), components=1, dtype="f4")
        out[f] = np.where(ids > 0, ids.astype(np.int64) - 1 + lo, -1)
    return torch.from_numpy(out).to(tris.x.device)


def render_normals(tris: ScreenTriangles, corner_values: torch.Tensor, num_frames: int, width: int,
                   height: int, background: tuple[float, float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded normal maps drawn and shaded by OpenGL.

    Args:
        tris: the screen triangles of ``num_frames`` frames.
        corner_values: the unnormalised normal at each corner ``[3 (corner), 3, T]``: the
            face's ``S (u, v, 1)`` at the snapped corner position.
        background: the encoded colour of empty pixels.
    Returns:
        ``(n + 1) / 2`` images ``[F, H, W, 3]`` and coverage masks ``[F, H, W]`` (float32),
        read back straight into the returned tensors.
    """
    image = torch.empty(num_frames, height, width, 3)
    mask = torch.zeros(num_frames, height, width)
    image[:] = torch.tensor(background)  # frames with no triangle are never drawn
    image_np, mask_np = image.numpy(), mask.numpy()
    for f, _, fbo in _draw(tris, corner_values, num_frames, width, height, "normals", background):
        fbo.read_into(image_np[f], viewport=(0, 0, width, height), components=3, attachment=0, dtype="f4")
        fbo.read_into(mask_np[f], viewport=(0, 0, width, height), components=1, attachment=1, dtype="f4")
    device = tris.x.device
    return image.to(device), mask.to(device)


def _draw(tris: ScreenTriangles, corner_values: torch.Tensor | None, num_frames: int, width: int,
          height: int, mode: str, background=(0.0, 0.0, 0.0)):
    """Draw each frame's triangles; yield ``(frame, its first triangle, framebuffer)``."""
    half = _VIEWPORT // 2
    ox, oy = width // 2 - half, height // 2 - half  # viewport origin: centred on the image
    x, y = tris.x.double(), tris.y.double()
    q = tris.inv_depth.double()
    inv_z = q[0] * x + q[1] * y + q[2]  # [3, T] at the snapped corners
    bounds = torch.searchsorted(tris.frame, torch.arange(num_frames + 1, device=tris.frame.device)).tolist()
    with _lock, _context():  # made current: other OpenGL code may have made its own current
        ctx, prog, fbo, extra = _target(width, height, mode)
        for f in range(num_frames):
            lo, hi = bounds[f], bounds[f + 1]
            if hi == lo:
                continue
            iz = inv_z[:, lo:hi]
            iz_min, iz_max = float(iz.min()), float(iz.max())
            span = max(iz_max - iz_min, 1e-12)
            # Nearer = larger inverse depth = smaller window depth, spread over [-1, 1].
            z = 1.0 - 2.0 * (iz - iz_min) / span * (1 - 2**-10) - 2**-11
            columns = [(x[:, lo:hi] - ox) / half - 1.0, (y[:, lo:hi] - oy) / half - 1.0, z]
            if corner_values is not None:
                columns += list(corner_values[:, :, lo:hi].double().unbind(1))
            data = torch.stack(columns, -1).transpose(0, 1).float().contiguous().cpu().numpy()  # [T, 3, 3|6]
            vbo = ctx.buffer(data.tobytes())
            if corner_values is None:
                vao = ctx.vertex_array(prog, [(vbo, "3f", "in_pos")])
            else:
                vao = ctx.vertex_array(prog, [(vbo, "3f 3f", "in_pos", "in_value")])
            fbo.use()
            ctx.viewport = (ox, oy, _VIEWPORT, _VIEWPORT)
            fbo.clear(*background, 0.0, depth=1.0)
            if extra is not None:
                extra.clear(0.0, 0.0, 0.0, 0.0)  # the mask attachment
            fbo.use()
            ctx.viewport = (ox, oy, _VIEWPORT, _VIEWPORT)
            vao.render()
            yield f, lo, fbo
            vao.release()
            vbo.release()


def _context():
    """The shared standalone EGL context and programs (created once per process)."""
    if "ctx" not in _state:
        import moderngl

        ctx = moderngl.create_context(standalone=True, backend="egl")
        _state["moderngl"] = moderngl
        _state["ids"] = ctx.program(vertex_shader=_ID_VERTEX_SHADER, fragment_shader=_ID_SHADER)
        _state["normals"] = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_NORMAL_SHADER)
        _state["ctx"] = ctx
    return _state["ctx"]


def _target(width: int, height: int, mode: str):
    """Context, program, framebuffer (float32 colour attachments and depth) and, for
    normals, a framebuffer over the mask attachment alone (to clear it to 0)."""
    ctx = _context()
    key = (width, height, mode)
    if key not in _state:
        depth = ctx.depth_texture((width, height))
        if mode == "ids":
            _state[key] = ctx.framebuffer([ctx.texture((width, height), 1, dtype="f4")], depth), None
        else:
            colour, mask = ctx.texture((width, height), 3, dtype="f4"), ctx.texture((width, height), 1, dtype="f4")
            _state[key] = ctx.framebuffer([colour, mask], depth), ctx.framebuffer([mask])
    moderngl = _state["moderngl"]
    ctx.enable(moderngl.DEPTH_TEST)
    ctx.disable(moderngl.CULL_FACE)
    ctx.depth_func = "<"
    fbo, extra = _state[key]
    return ctx, _state[mode], fbo, extra
