"""Benchmark: body-mesh normal-map rendering (and, later, tracking), side by side.

Rasterizer section: camera-space normal maps of an upper-body-sized mesh at 512x512 for
81 frames (a moving mesh seen by an orbiting camera), measured in one run:

- ours: ``render_normal_maps`` with the PyTorch rasterizer (two-sided, and with back faces
  culled);
- our moderngl backend: the same pipeline with OpenGL (EGL) drawing and shading our screen
  triangles, and its agreement with ours (masks, normals);
- moderngl shaders: the usual way to render normal maps with moderngl (vertex + fragment
  shader, smooth normals), the reference of the issue;
- pyrender (EGL): its own colour + depth render of the same meshes, re-uploaded per frame
  as a deforming mesh needs;
- the peak memory of an 81-frame render (measured in a child process).

Prints medians and ratios; the last line is a JSON object with the figures. Each section
is a function returning its figures; a tracking section is to be added the same way (see
SECTIONS). The machine may be shared: the load average is printed and recorded.

Run: ``.venv/bin/python benchmarks/body.py [--frames N] [--repeats N] [--threads N]``
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from devpack import import_pack  # noqa: E402

import_pack()

from factorportrait.models import trajectories  # noqa: E402
from factorportrait.models.camera import CameraTrajectory, rotation_about_axis  # noqa: E402
from factorportrait.models.render.meshes import icosphere  # noqa: E402
from factorportrait.models.render.normal_maps import render_normal_maps  # noqa: E402

WIDTH = HEIGHT = 512
FRAMES = 81
TARGET_MS = 20.0


# ----------------------------------------------------------------------------- inputs

def benchmark_mesh(frames: int = FRAMES) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The mesh sequence to render: world vertices ``[F, V, 3]`` (metres, DESIGN.md world),
    faces ``[M, 3]`` and a name.

    Until the upper-body template exists this is a procedural bust of about 14k triangles
    (ellipsoids for head, neck, shoulders and torso) whose head nods and turns over the
    frames; switch this function to the template and a tracked or synthetic pose sequence.
    """
    parts = [  # (subdivisions, radii, centre)
        (4, (0.080, 0.110, 0.095), (0.0, 0.10, 0.0)),  # head
        (3, (0.050, 0.070, 0.050), (0.0, -0.02, -0.01)),  # neck
        (4, (0.190, 0.200, 0.110), (0.0, -0.27, -0.02)),  # torso
        (3, (0.090, 0.070, 0.080), (0.17, -0.10, -0.02)),  # shoulders
        (3, (0.090, 0.070, 0.080), (-0.17, -0.10, -0.02)),
    ]
    verts, faces, offset = [], [], 0
    for sub, radii, centre in parts:
        v, f = icosphere(sub)
        verts.append(v * torch.tensor(radii, dtype=torch.float64) + torch.tensor(centre, dtype=torch.float64))
        faces.append(f + offset)
        offset += len(v)
    rest = torch.cat(verts)
    head = torch.zeros(len(rest), dtype=torch.bool)
    head[: len(verts[0])] = True
    phase = torch.linspace(0, 2 * torch.pi, frames, dtype=torch.float64)
    nod, turn = 0.25 * torch.sin(phase), 0.4 * torch.sin(0.5 * phase)
    rot = rotation_about_axis("y", turn) @ rotation_about_axis("x", nod)
    pivot = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64)
    moved = (rest[head] - pivot) @ rot.transpose(-1, -2) + pivot  # [F, Vh, 3]
    sequence = rest.expand(frames, -1, -1).clone()
    sequence[:, head] = moved
    faces = torch.cat(faces)
    return sequence.float(), faces, f"procedural bust ({len(faces)} triangles, {len(rest)} vertices)"


def benchmark_camera(frames: int = FRAMES) -> CameraTrajectory:
    """An orbit of ±30° yaw with a slight pitch, 0.9 m from the chest, 40° field of view."""
    start = trajectories.View(yaw=-30, pitch=5, distance=0.9, fov=40, target=(0.0, -0.05, 0.0))
    return trajectories.orbit(frames, start, yaw_end=30)


def timed(fn, repeats: int) -> tuple[float, list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        out = None  # free the previous result first
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


# ----------------------------------------------------------------------------- rasterizer

def _moderngl_status() -> tuple[bool, str]:
    try:
        from factorportrait.models.render import moderngl_backend
    except Exception as err:  # noqa: BLE001
        return False, f"{type(err).__name__}: {err}"
    return moderngl_backend.is_available()


_GL_VERTEX = """
#version 330
uniform mat4 clip_from_world;
uniform mat3 view_from_world;  // world -> DESIGN.md camera axes (x right, y up, z to viewer)
in vec3 in_pos;
in vec3 in_normal;
out vec3 normal;
void main() {
    gl_Position = clip_from_world * vec4(in_pos, 1.0);
    normal = view_from_world * in_normal;
}
"""
_GL_FRAGMENT = """
#version 330
in vec3 normal;
out vec3 colour;
void main() { colour = normalize(normal) * 0.5 + 0.5; }
"""


def _moderngl_shader_renderer(verts: torch.Tensor, faces: torch.Tensor, camera: CameraTrajectory):
    """The usual way to render normal maps with moderngl (the reference of the issue): a
    vertex + fragment shader drawing the mesh with smooth vertex normals, per frame
    uploading positions and normals (computed on the CPU, like ours) and reading back the
    float image. Returns a function rendering all frames, or the reason it cannot."""
    try:
        import moderngl
        import numpy as np

        ctx = moderngl.create_context(standalone=True, backend="egl")
    except Exception as err:  # noqa: BLE001
        return None, f"moderngl unavailable ({type(err).__name__}: {err})"
    from factorportrait.models.render.normal_maps import BACKGROUND, vertex_normals

    prog = ctx.program(vertex_shader=_GL_VERTEX, fragment_shader=_GL_FRAGMENT)
    fbo = ctx.framebuffer(color_attachments=[ctx.texture((WIDTH, HEIGHT), 3, dtype="f4")],
                          depth_attachment=ctx.depth_texture((WIDTH, HEIGHT)))
    ibo = ctx.buffer(faces.int().numpy().tobytes())
    near, far = 0.01, 100.0
    k = camera.intrinsics(WIDTH, HEIGHT)
    clip = torch.zeros(len(k), 4, 4, dtype=torch.float64)  # OpenCV camera -> GL clip, window y = image row
    clip[:, 0, 0], clip[:, 0, 2] = 2 * k[:, 0, 0] / WIDTH, 2 * k[:, 0, 2] / WIDTH - 1
    clip[:, 1, 1], clip[:, 1, 2] = 2 * k[:, 1, 1] / HEIGHT, 2 * k[:, 1, 2] / HEIGHT - 1
    clip[:, 2, 2], clip[:, 2, 3] = (far + near) / (far - near), -2 * far * near / (far - near)
    clip[:, 3, 2] = 1
    clip_from_world = (clip @ camera.w2c).float()
    view_from_world = (torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)) @ camera.w2c[:, :3, :3]).float()

    def render_all():
        normals = vertex_normals(verts, faces).float()
        out = np.empty((len(verts), HEIGHT, WIDTH, 3), dtype=np.float32)
        ctx.enable(moderngl.DEPTH_TEST)
        for f in range(len(verts)):
            c = f if len(clip_from_world) > 1 else 0
            vbo = ctx.buffer(torch.cat([verts[f].float(), normals[f]], 1).numpy().tobytes())
            vao = ctx.vertex_array(prog, [(vbo, "3f 3f", "in_pos", "in_normal")], ibo)
            prog["clip_from_world"].write(clip_from_world[c].T.contiguous().numpy().tobytes())
            prog["view_from_world"].write(view_from_world[c].T.contiguous().numpy().tobytes())
            fbo.use()
            fbo.clear(*BACKGROUND, 0.0, depth=1.0)
            vao.render()
            out[f] = np.frombuffer(fbo.read(components=3, dtype="f4"), dtype=np.float32).reshape(HEIGHT, WIDTH, 3)
            vao.release()
            vbo.release()
        return torch.from_numpy(out)

    return render_all, ""


def _pyrender_renderer(verts: torch.Tensor, faces: torch.Tensor, camera: CameraTrajectory):
    """A function rendering all frames with pyrender (EGL), or the reason it cannot."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    try:
        import numpy as np
        import pyrender
        import trimesh
    except Exception as err:  # noqa: BLE001
        return None, f"pyrender unavailable ({type(err).__name__}: {err})"
    k = camera.intrinsics(WIDTH, HEIGHT).numpy()
    c2w = camera.c2w.numpy() @ np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV -> OpenGL camera axes
    faces_np = faces.numpy()
    verts_np = verts.numpy()
    try:
        renderer = pyrender.OffscreenRenderer(WIDTH, HEIGHT)
    except Exception as err:  # noqa: BLE001
        return None, f"pyrender cannot open an offscreen context ({type(err).__name__}: {err})"

    def render_all():
        depth_sum = 0
        for f in range(len(verts_np)):
            scene = pyrender.Scene()
            mesh = trimesh.Trimesh(verts_np[f], faces_np, process=False)
            scene.add(pyrender.Mesh.from_trimesh(mesh, smooth=True))
            cf = f if len(k) > 1 else 0
            cam = pyrender.IntrinsicsCamera(k[cf, 0, 0], k[cf, 1, 1], k[cf, 0, 2], k[cf, 1, 2], znear=0.01, zfar=100)
            scene.add(cam, pose=c2w[cf])
            _, depth = renderer.render(scene)
            depth_sum += int((depth > 0).sum())
        return depth_sum

    return render_all, ""


def _memory_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in MB, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _peak_memory_child(backend: str, frames: int) -> None:
    """Child process: peak RSS growth while rendering ``frames`` frames (JSON on stdout).
    (``getrusage`` would report the parent's peak: Linux keeps it across exec.)"""
    verts, faces, _ = benchmark_mesh(frames)
    camera = benchmark_camera(frames)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    before = _memory_mb("VmRSS")
    image, mask = render_normal_maps(verts, faces, camera, WIDTH, HEIGHT, backend=backend)
    peak = _memory_mb("VmHWM")
    out_mb = (image.numel() * image.element_size() + mask.numel() * mask.element_size()) / 1e6
    print(json.dumps({"peak_rss_mb": peak, "peak_growth_mb": peak - before, "output_mb": out_mb}))


def _peak_memory(backend: str, frames: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--peak-memory-child", backend, "--frames", str(frames), "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return {k: round(v, 1) for k, v in json.loads(out).items()}


def rasterizer_section(args) -> dict:
    """Normal maps at 512x512: ours vs moderngl (EGL) vs pyrender, ms/frame and agreement."""
    verts, faces, name = benchmark_mesh(args.frames)
    camera = benchmark_camera(args.frames)
    n = args.frames
    print(f"mesh: {name}; {n} frames at {WIDTH}x{HEIGHT}, orbiting camera")
    figures: dict = {"mesh": name, "frames": n, "width": WIDTH, "height": HEIGHT}

    def ours(backend="torch", cull=False):
        return render_normal_maps(verts, faces, camera, WIDTH, HEIGHT, backend=backend, cull_back_faces=cull)

    ours_s, ours_all, (image, mask) = timed(ours, args.repeats)
    cull_s, cull_all, (image_c, _) = timed(lambda: ours(cull=True), args.repeats)
    coverage = float(mask.mean())
    cull_diff = float((image != image_c).any(-1).float().mean())
    figures |= {"ours_ms_per_frame": round(ours_s / n * 1e3, 2),
                "ours_cull_back_faces_ms_per_frame": round(cull_s / n * 1e3, 2),
                "cull_back_faces_pixels_differing": cull_diff,
                "cull_back_faces_max_abs_diff": float((image - image_c).abs().max()),
                "mesh_coverage": round(coverage, 3)}
    print(f"ours (torch, two-sided)    median {ours_s / n * 1e3:7.2f} ms/frame  (runs: "
          f"{', '.join(f'{t / n * 1e3:.1f}' for t in ours_all)}); mesh covers {coverage:.0%} of the pixels")
    print(f"ours (torch, cull back)    median {cull_s / n * 1e3:7.2f} ms/frame  (runs: "
          f"{', '.join(f'{t / n * 1e3:.1f}' for t in cull_all)}); pixels differing from two-sided "
          f"{cull_diff:.1e} (max |difference| {figures['cull_back_faces_max_abs_diff']:.1e}: silhouette depth ties)")

    ok, why = _moderngl_status()
    if ok:
        gl_s, gl_all, (image_gl, mask_gl) = timed(lambda: ours("moderngl"), args.repeats)
        mask_diff = float((mask_gl != mask).float().mean())
        pix_diff = float(((image_gl - image).abs() > 1e-6).any(-1).float().mean())
        max_diff = float((image_gl - image).abs().max())
        figures |= {"moderngl_backend_ms_per_frame": round(gl_s / n * 1e3, 2),
                    "ours_over_moderngl_backend": round(ours_s / gl_s, 2),
                    "moderngl_mask_pixels_differing": mask_diff,
                    "moderngl_image_pixels_differing_over_1e-6": pix_diff,
                    "moderngl_max_abs_diff": max_diff}
        print(f"moderngl backend (EGL)     median {gl_s / n * 1e3:7.2f} ms/frame  (runs: "
              f"{', '.join(f'{t / n * 1e3:.1f}' for t in gl_all)}); ours/backend = {ours_s / gl_s:.2f} "
              f"(our triangles, OpenGL z-buffer and shading)")
        print(f"  moderngl backend vs ours: mask pixels differing {mask_diff:.2e}, image pixels differing "
              f"by more than 1e-6 {pix_diff:.2e}, max |difference| {max_diff:.2e}")
    else:
        figures["moderngl_unavailable"] = why
        print(f"moderngl: skipped ({why})")

    render_all, why = _moderngl_shader_renderer(verts, faces, camera)
    if render_all is not None:
        sh_s, sh_all, image_sh = timed(render_all, args.repeats)
        mean_diff = float((image_sh - image).abs().mean())
        figures |= {"moderngl_shader_ms_per_frame": round(sh_s / n * 1e3, 2),
                    "ours_over_moderngl_shader": round(ours_s / sh_s, 2),
                    "moderngl_shader_mean_abs_diff": mean_diff}
        print(f"moderngl (EGL, shaders)    median {sh_s / n * 1e3:7.2f} ms/frame  (runs: "
              f"{', '.join(f'{t / n * 1e3:.1f}' for t in sh_all)}); ours/moderngl = {ours_s / sh_s:.2f}; "
              f"mean |difference| to ours {mean_diff:.1e} (its own edge rules)")
    else:
        figures["moderngl_shader_unavailable"] = why
        print(f"moderngl shaders: skipped ({why})")

    render_all, why = _pyrender_renderer(verts, faces, camera)
    if render_all is not None:
        pr_s, pr_all, _ = timed(render_all, args.repeats)
        figures |= {"pyrender_ms_per_frame": round(pr_s / n * 1e3, 2), "ours_over_pyrender": round(ours_s / pr_s, 2)}
        print(f"pyrender (EGL, own render) median {pr_s / n * 1e3:7.2f} ms/frame  (runs: "
              f"{', '.join(f'{t / n * 1e3:.1f}' for t in pr_all)}); ours/pyrender = {ours_s / pr_s:.2f}")
    else:
        figures["pyrender_unavailable"] = why
        print(f"pyrender: skipped ({why})")

    mem = _peak_memory("torch", FRAMES, args.threads)
    figures["peak_memory_81_frames"] = mem
    print(f"peak memory, {FRAMES} frames (torch): RSS {mem['peak_rss_mb']:.0f} MB, "
          f"growth while rendering {mem['peak_growth_mb']:.0f} MB (of which output {mem['output_mb']:.0f} MB)")
    figures["targets_met"] = {
        f"at_most_{TARGET_MS:g}_ms_per_frame": ours_s / n * 1e3 <= TARGET_MS,
        **({"no_slower_than_moderngl_shader": ours_s <= sh_s} if "moderngl_shader_ms_per_frame" in figures else {}),
    }
    return {"rasterizer": figures}


# Sections in order; each takes the parsed arguments and returns a dict of figures.
SECTIONS = [rasterizer_section]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=FRAMES)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--peak-memory-child", metavar="BACKEND", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.peak_memory_child:
        _peak_memory_child(args.peak_memory_child, args.frames)
        return
    load = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} (other processes slow every figure down)")
    figures = {"threads": torch.get_num_threads(), "load_average": round(load[0], 2)}
    for section in SECTIONS:
        figures |= section(args)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
