"""Benchmark: the single-photo avatar (models/avatar/) on real photos, real driving clips
and anny renders with known parameters.

Inputs (``scripts/real_inputs.py``, fetched by setup_env.sh; none made here): the NASA
astronaut portrait (public domain; the avatar that is driven), single_face.jpg,
multi_face.jpg (largest face), BWPictureHuman.jpg (grayscale), Image_with_alpha.png;
the driving clips WolfgangLanger_Pexels.mp4 (a woman laughing: frames 230-390, every
second frame; and crying with a hand over her mouth: frames 150-202) and single_face.mp4
(a man talking); painted anny renders with known parameters
(``face_correspondence.render_face_images``).

Sections (each prints a Markdown table; the figures' names are the issue's):

1. ``round_trip_psnr_db``: each photo's avatar rendered at the photo's own camera, pose and
   expression against the photo, over the whole frame and the face box of the fit; and a
   painted anny render (its fit against the known head rotation too). ``build_seconds``.
2. The job on the real clips at ``--size`` (the astronaut's avatar, the photo's camera):
   Track Body Mesh (MediaPipe + the all-frames fit) and the ARKit encoder on the driving
   frames, the controls, the render. On the rendered frames: ``expression_pearson`` (the
   ARKit encoder again, per channel, against the driving codes),
   ``head_pose_error_deg_median`` (the pack's body tracker, and the ARKit encoder's head
   rotation, relative to frame 0, against the retargeted track's head, geodesic angle),
   ``identity_distance`` with the driving expressions (dlib on a crop around the rendered
   head, with the found fraction). The same on an anny driving clip with known actions
   (expression only; also against the known actions).
3. Camera orbit -30..+30 degrees (photo pose and expression): ``camera_yaw_error_deg_median``
   (the head's apparent yaw, relative to the photo's view, against the camera's) and
   ``identity_distance`` within +-15 and at 15-30 degrees.
4. Disentanglement: a camera-only change (yaw 0 -> 15, same pose and expression) re-read:
   codes (max abs over channels, median over frames) and the head's world rotation (the
   known camera rotation removed); an expression-only change (same pose and camera, the
   photo's expression instead of the driving one): the head rotation read. Both readers
   (the body tracker, the ARKit encoder), and the same changes on painted anny renders
   (exact geometry: what the readers contribute by themselves).
5. ``frames_per_second`` at ``--size``: rendering alone (an orbit with the driving pose and
   expression; and the photo's static camera) and the whole job (detect + track +
   expression + controls + render), interleaved runs, medians and the best run.
6. Where it breaks, measured: identity distance and found fraction against yaw 0..60 (and
   without the hair/clothing layer, a diagnostic); the hand-over-the-mouth frames of the
   woman's clip (face found, residuals, frame-to-frame jitter, codes, identity).

PNG strips of the frames go to ``--out`` (default ``output/benchmarks/avatar/``). The last
line is one JSON object with every figure (``misses``: the figures that miss their target).

Run: ``.venv/bin/python benchmarks/avatar.py [--frames 81] [--size 512] [--repeats 3]
[--quick] [--sections ...]`` (``--quick``: a smoke run on a few frames, under a minute on
an idle 2-core CPU; the default run takes about 3 minutes there, 5-6 when the cores are
shared).
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
import warnings
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from devpack import ROOT, anny_cache_dir, import_pack, load_anny_printing  # noqa: E402
from face_identity import identity_distances  # noqa: E402
from real_inputs import read_image, real_input  # noqa: E402

from common import timed_side_by_side  # noqa: E402

import_pack()

from factorportrait.models.avatar.avatar import build_avatar  # noqa: E402
from factorportrait.models.avatar.controls import avatar_controls  # noqa: E402
from factorportrait.models.avatar.layers import Layer  # noqa: E402
from factorportrait.models.avatar.photo import prepare_photo  # noqa: E402
from factorportrait.models.avatar.render import render_avatar  # noqa: E402
from factorportrait.models.body.anny_model import ARKIT_FACE_ACTIONS  # noqa: E402
from factorportrait.models.camera import paths  # noqa: E402
from factorportrait.models.camera.trajectory import FRONTAL_W2C_ROTATION  # noqa: E402
from factorportrait.models.errors import InputError  # noqa: E402
from factorportrait.models.evaluation.expression_metrics import pearson  # noqa: E402
from factorportrait.models.evaluation.head_pose import head_rotations, rotation_error_deg  # noqa: E402
from factorportrait.models.evaluation.image_metrics import psnr  # noqa: E402
from factorportrait.models.expression.arkit_encoder import ArkitEncoder  # noqa: E402
from factorportrait.models.expression.face_correspondence import (  # noqa: E402
    load_face_correspondence, render_face_images)
from factorportrait.models.tracking.body_track import track_body  # noqa: E402
from factorportrait.models.tracking.fit import fit_sequence  # noqa: E402
from factorportrait.models.tracking.mediapipe_detector import detect_landmarks  # noqa: E402

warnings.filterwarnings("ignore", message=".*[Ss]parse.*")

CHANNELS = ("jawOpen", "mouthSmileLeft", "mouthSmileRight", "eyeBlinkLeft", "eyeBlinkRight", "browInnerUp",
            "browDownLeft", "browDownRight")
PEARSON_TARGETED = ("jawOpen", "mouthSmileLeft", "mouthSmileRight")
PHOTOS = ("single_face", "multi_face", "grayscale", "rgba", "astronaut")  # the driven one last: its build is warm
DRIVEN = "astronaut"
# The woman's clip: laughing (the job) and crying with a hand over her mouth (where it breaks).
WOMAN_LAUGH = (230, 2)  # first frame, step
WOMAN_HAND = (150, 2)
BREAK_YAWS = (0, 15, 30, 45, 60)
HEAD_CROP = 3.0  # face sizes: the side of the crop given to dlib
TARGETS = {  # figure: (target, "min" or "max")
    "round_trip_psnr_db": (32.0, "min"),
    "expression_pearson": (0.7, "min"),
    "head_pose_error_deg_median": (3.0, "max"),
    "camera_yaw_error_deg_median": (3.0, "max"),
    "identity_within_15": (0.35, "max"),
    "identity_at_30": (0.45, "max"),
    "identity_driving": (0.45, "max"),
    "camera_only_code_change": (0.05, "max"),
    "camera_only_head_change_deg": (1.0, "max"),
    "expression_only_head_change_deg": (1.0, "max"),
    "render_frames_per_second": (20.0, "min"),
    "build_seconds": (10.0, "max"),
}


# ----------------------------------------------------------------------------- inputs and small helpers

def read_photo(name: str) -> torch.Tensor:
    """A real photo as a ComfyUI IMAGE ``[1, H, W, C]`` (C = 1 grey, 3 RGB or 4 RGBA), float 0..1."""
    return read_image(real_input(name))


def read_clip(name: str, start: int, count: int, step: int = 1) -> tuple[torch.Tensor, list[int]]:
    """Frames ``start, start + step, ...`` (``count`` at most) of a video as RGB ``[F, H, W, 3]``."""
    capture = cv2.VideoCapture(str(real_input(name)))
    frames, index, kept = [], 0, []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        if index >= start and (index - start) % step == 0:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            kept.append(index)
        index += 1
    capture.release()
    return torch.from_numpy(np.stack(frames)).float() / 255, kept


def cameras(view: paths.View, yaws) -> "paths.CameraTrajectory":
    """One camera per yaw (degrees), the rest of ``view`` kept."""
    return paths.trajectory_from_channels(torch.tensor([replace(view, yaw=float(y)).vector() for y in yaws],
                                                       dtype=torch.float64))


def relative(rotations: torch.Tensor, ref: int = 0) -> torch.Tensor:
    """Rotations ``[F, 3, 3]`` relative to frame ``ref``, in the camera's axes (left)."""
    r = rotations.double()
    return r @ r[ref].T


def yaw_deg(rotations: torch.Tensor) -> torch.Tensor:
    """Rotation about the camera's vertical axis (OpenCV axes) ``[F]``, degrees."""
    return torch.rad2deg(torch.atan2(rotations[:, 0, 2], rotations[:, 2, 2]))


def arkit_heads(report) -> torch.Tensor:
    """The ARKit encoder's head rotations in OpenCV camera axes ``[F, 3, 3]``: its report
    gives them in the frontal camera's world axes (identity = facing the camera, y up), so
    the frontal camera's turn is put back on the left (as the body tracker's readings have it)."""
    return FRONTAL_W2C_ROTATION.double() @ report.head_rotation.double()


def median(values) -> float | None:
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return statistics.median(values) if values else None


def rounded(x, digits: int = 3):
    if isinstance(x, dict):
        return {k: rounded(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [rounded(v, digits) for v in x]
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else round(x, digits)
    return x


def fmt(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def table(header: list[str], rows: list[list]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(fmt(v) if not isinstance(v, str) else v for v in row) + " |")
    print(flush=True)


def identity(b, frames: torch.Tensor, params, camera) -> dict:
    """dlib distance between the photo and each rendered frame's head (median, per frame) and
    the found fraction. dlib is given a square crop around the rendered head (``HEAD_CROP``
    face sizes, centred on the nose tip of ``params`` seen by ``camera``): face_identity keeps
    the largest face dlib finds, and on whole frames its HOG detector takes the astronaut's
    round mission patch for a larger face at some views."""
    distances, found = identity_distances(b.photo, head_crops(b, frames, params, camera))
    return {"median": median(distances), "found": found, "per_frame": distances}


def head_crops(b, frames: torch.Tensor, params, camera) -> torch.Tensor:
    """Square crops ``[F, s, s, 3]`` of rendered frames around the head (see :func:`identity`)."""
    n, height, width = frames.shape[:3]
    with torch.no_grad():
        nose = b.model.landmarks(b.model(params))[:, b.model.landmark_names.index("nose_tip")].double()  # [F', 3]
    nose = nose.expand(n, 3) if len(nose) == 1 else nose
    w2c = camera.w2c.expand(n, 4, 4) if camera.num_frames == 1 else camera.w2c
    k = camera.intrinsics(width, height)
    k = k.expand(n, 3, 3) if camera.num_frames == 1 else k
    points = (w2c[:, :3, :3] @ nose[..., None])[..., 0] + w2c[:, :3, 3]
    uvw = (k @ points[..., None])[..., 0]
    uv = uvw[:, :2] / uvw[:, 2:]
    side = min(width, height, round(HEAD_CROP * b.avatar.fit.face.size * height / b.avatar.height))
    crops = []
    for i in range(n):
        x0 = int(min(max(float(uv[i, 0]) - side / 2, 0), width - side))
        y0 = int(min(max(float(uv[i, 1]) - side / 2, 0), height - side))
        crops.append(frames[i, y0:y0 + side, x0:x0 + side])
    return torch.stack(crops)


def save_strip(path: Path, rows: list[torch.Tensor], height: int = 192) -> None:
    """Rows of images ``[N, H, W, 3]`` side by side, rows stacked, each image ``height`` tall."""
    lines = []
    for images in rows:
        tiles = []
        for im in images:
            a = (im[..., :3].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
            if a.shape[2] == 1:
                a = np.repeat(a, 3, 2)
            w = max(1, round(a.shape[1] * height / a.shape[0]))
            tiles.append(cv2.resize(a, (w, height), interpolation=cv2.INTER_AREA))
        lines.append(np.concatenate(tiles, 1))
    width = max(line.shape[1] for line in lines)
    lines = [np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0))) for line in lines]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(lines, 0), cv2.COLOR_RGB2BGR))


def face_crops(b, frames: torch.Tensor, grow: float = 1.8) -> torch.Tensor:
    """The photo's face region (the fit's box, ``grow`` times larger) of rendered frames
    (``--size`` renders of the photo's framing), to see the face in the strips."""
    box, scale = b.avatar.fit.face, b.size / b.avatar.height
    cx, cy, half = (box.x0 + box.x1) / 2 * scale, (box.y0 + box.y1) / 2 * scale, grow * box.size * scale / 2
    x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
    return frames[:, y0:int(cy + half), x0:int(cx + half)]


def spread(n: int, k: int) -> list[int]:
    """``k`` indices spread over ``range(n)``."""
    return sorted({round(i * (n - 1) / max(k - 1, 1)) for i in range(min(k, n))})


class Bench:
    """What the sections share: the models, the driven avatar, the options."""

    def __init__(self, args):
        self.args = args
        self.model = load_anny_printing()
        self.corr = load_face_correspondence(anny_cache_dir(), self.model)
        self.encoder = ArkitEncoder(self.model, self.corr)
        self.out = Path(args.out)
        self.avatar = None  # the driven avatar (astronaut), set by the round-trip section
        self.photo = None  # its photo (RGB, the avatar's working size) [1, H, W, 3]
        self.jobs: dict = {}  # clip name -> what the job section made

    @property
    def size(self) -> int:
        return self.args.size

    @property
    def fov(self) -> float:
        return float(self.avatar.camera.fov[0])

    def view(self) -> paths.View:
        return paths.reference_view(self.avatar.camera)

    def render(self, params, camera) -> torch.Tensor:
        return render_avatar(self.avatar, params, camera, self.size, self.size)[0]

    def track_heads(self, frames: torch.Tensor, fov: float | None = None) -> tuple[torch.Tensor, list[int]]:
        """The pack's body tracker (MediaPipe landmarks + the all-frames fit, the known field
        of view: the avatar's unless given) on rendered frames -> camera-space head rotations
        ``[F, 3, 3]`` and the frames without a face."""
        keypoints = detect_landmarks(frames, video=True)
        params, camera, report = fit_sequence(self.model, keypoints, camera_fov_deg=fov or self.fov)
        return head_rotations(self.model, params, camera), list(report.filled_frames)


# ----------------------------------------------------------------------------- 1. round trip

def face_box_mask(avatar, height: int, width: int) -> torch.Tensor:
    box = avatar.fit.face
    mask = torch.zeros(1, height, width)
    x0, y0 = max(0, int(box.x0)), max(0, int(box.y0))
    x1, y1 = min(width, int(math.ceil(box.x1))), min(height, int(math.ceil(box.y1)))
    mask[:, y0:y1, x0:x1] = 1
    return mask


def anny_photo(model, size: int) -> tuple[torch.Tensor, object]:
    """A painted anny render with known parameters (head turned 10 degrees and tilted, a
    smile, the jaw a little open), head and shoulders, 30 degrees field of view."""
    params = model.neutral_params(1)
    for name, value in (("mouthSmileLeft", 0.4), ("mouthSmileRight", 0.4), ("jawOpen", 0.2), ("browInnerUp", 0.3)):
        params.face[:, ARKIT_FACE_ACTIONS.index(name)] = value
    params.head[:, 1] = math.radians(10)
    params.head[:, 0] = math.radians(-5)
    with torch.no_grad():
        vertices = model(params)
    camera = paths.static(1, paths.View(distance=1.0, fov=30.0, target=(0.0, 0.05, 0.0)))
    return render_face_images(model, vertices, camera, size, size), params


def section_round_trip(b: Bench, figures: dict) -> None:
    print("## Round trip: each photo's avatar at the photo's own camera, pose and expression\n")
    rows, psnrs, builds, notes = [], {}, {}, {}
    for name in ((DRIVEN,) if b.args.quick else PHOTOS):
        image = read_photo(name)
        reference = prepare_photo(image).rgb[None]  # the avatar's working copy (RGB, reduced if large)
        try:
            avatar = build_avatar(b.model, b.corr, image)
        except InputError as err:
            rows.append([name, f"{image.shape[2]}x{image.shape[1]}x{image.shape[3]}", "no face", None, None, None, None])
            notes[name] = str(err)
            continue
        params, camera, _ = avatar_controls(avatar)
        rendered, _mask = render_avatar(avatar, params, camera, avatar.width, avatar.height)
        face = face_box_mask(avatar, avatar.height, avatar.width)
        psnrs[name] = {"frame": psnr(rendered, reference), "face": psnr(rendered, reference, face)}
        builds[name] = avatar.build_seconds
        notes[name] = "; ".join(avatar.notes)
        if image.shape[3] == 4 and prepare_photo(image).alpha is None:
            notes[name] += "; its alpha channel is opaque everywhere, so the selfie segmentation made the matte"
        rows.append([name, f"{image.shape[2]}x{image.shape[1]}x{image.shape[3]}", f"{avatar.fit.face.size:.0f}",
                     psnrs[name]["frame"], psnrs[name]["face"], avatar.build_seconds,
                     f"{avatar.fit.face_error_px[1]:.1f}"])
        save_strip(b.out / f"round_trip_{name}.png", [torch.cat([reference, rendered, ((rendered - reference).abs() * 4)])])
        if name == DRIVEN:
            b.avatar, b.photo = avatar, reference

    # A painted anny render with known parameters.
    image, truth = anny_photo(b.model, 512)
    avatar = build_avatar(b.model, b.corr, image, fov_degrees=30.0)
    params, camera, _ = avatar_controls(avatar)
    rendered, _mask = render_avatar(avatar, params, camera, 512, 512)
    face = face_box_mask(avatar, 512, 512)
    psnrs["anny_render"] = {"frame": psnr(rendered, image), "face": psnr(rendered, image, face)}
    builds["anny_render"] = avatar.build_seconds
    with torch.no_grad():
        head_error = float(rotation_error_deg(b.model.head_rotation(truth), b.model.head_rotation(avatar.params))[0])
    idx = [ARKIT_FACE_ACTIONS.index(a) for a in ("jawOpen", "mouthSmileLeft", "mouthSmileRight", "browInnerUp")]
    face_error = float((avatar.params.face[0, idx] - truth.face[0, idx]).abs().max())
    rows.append(["anny render (known)", "512x512x3", f"{avatar.fit.face.size:.0f}", psnrs["anny_render"]["frame"],
                 psnrs["anny_render"]["face"], avatar.build_seconds, f"{avatar.fit.face_error_px[1]:.1f}"])
    save_strip(b.out / "round_trip_anny_render.png", [torch.cat([image, rendered, (rendered - image).abs() * 4])])
    table(["photo", "input WxHxC", "face px", "PSNR frame dB", "PSNR face dB", "build s", "mesh fit px"], rows)
    print(f"the first build in the process ({rows[0][0]}) includes loading MediaPipe's models; the face PSNR is over "
          "the fit's face box.")
    print(f"anny render: the fit's head rotation is {head_error:.2f} deg from the truth; its largest face-action "
          f"error (jawOpen, smiles, browInnerUp) {face_error:.2f}.")
    for name, note in notes.items():
        if note:
            print(f"- {name}: {note}")
    print()
    if b.avatar is None:
        raise SystemExit(f"the {DRIVEN} photo gave no avatar; the other sections need it.")
    figures["round_trip_psnr_db"] = psnrs
    figures["build_seconds"] = builds
    figures["anny_fit"] = {"head_rotation_error_deg": head_error, "face_action_error_max": face_error}


# ----------------------------------------------------------------------------- 2. the job on real clips

def run_job(b: Bench, clip: torch.Tensor, camera=None) -> dict:
    """Track Body Mesh + the ARKit encoder on ``clip``, the controls, the render (timed)."""
    times = {}
    start = time.perf_counter()
    keypoints = detect_landmarks(clip, video=True)
    times["detect"] = time.perf_counter() - start
    t = time.perf_counter()
    track = track_body(b.model, keypoints)
    times["track"] = time.perf_counter() - t
    t = time.perf_counter()
    codes, report = b.encoder.encode_images(clip, video=True)
    times["expression"] = time.perf_counter() - t
    t = time.perf_counter()
    params, camera, notes = avatar_controls(b.avatar, track, codes, camera)
    rendered = b.render(params, camera)
    times["render"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - start
    return {"track": track, "codes": codes, "report": report, "params": params, "camera": camera,
            "rendered": rendered, "times": times, "notes": notes}


def correlations(read: torch.Tensor, driving: torch.Tensor) -> dict:
    return {c: pearson(read[:, ARKIT_FACE_ACTIONS.index(c)], driving[:, ARKIT_FACE_ACTIONS.index(c)])
            for c in CHANNELS}


def measure_job(b: Bench, job: dict) -> dict:
    """On the rendered frames: the codes re-read, the head tracked, the identity."""
    rendered = job["rendered"]
    read, read_report = b.encoder.encode_images(rendered, video=True)
    tracked, missed = b.track_heads(rendered)
    truth = head_rotations(b.model, job["params"], job["camera"])
    pose_error = rotation_error_deg(relative(tracked), relative(truth))
    arkit_error = rotation_error_deg(relative(arkit_heads(read_report)), relative(truth))
    step = max(1, len(rendered) // b.args.identity_frames)
    picked = list(range(0, len(rendered), step))
    ident = identity(b, rendered[picked], job["params"].select(picked), job["camera"])
    driving = job["codes"].codes
    return {"read": read.codes, "pearson": correlations(read.codes, driving),
            "driving_std": {c: float(driving[:, ARKIT_FACE_ACTIONS.index(c)].std()) for c in CHANNELS},
            "code_mae": float((read.codes - driving)[:, [ARKIT_FACE_ACTIONS.index(c) for c in CHANNELS]].abs().mean()),
            "head_error": pose_error, "arkit_head_error": arkit_error, "tracker_missed": missed,
            "reread_missed": read_report.filled_frames, "identity": ident, "identity_step": step,
            "truth_heads": truth, "tracked_heads": tracked}


def anny_driving_params(model, frames: int):
    """anny parameters of a driving clip (the head turning and nodding) with known face
    actions: the expression benchmark's, with the brows lowered too; and the actions ``[F, 52]``."""
    t = torch.linspace(0, 1, frames)
    wave = lambda k: torch.sin(k * math.pi * t)  # noqa: E731
    blink = (0.5 + 0.5 * torch.cos(6 * math.pi * t)) ** 6
    actions = {"jawOpen": 0.7 * wave(1) ** 2, "mouthSmileLeft": 0.8 * wave(2).clamp(min=0),
               "mouthSmileRight": 0.8 * wave(2).clamp(min=0), "eyeBlinkLeft": blink, "eyeBlinkRight": blink,
               "browInnerUp": 0.9 * wave(3).clamp(min=0), "browDownLeft": 0.8 * (-wave(3)).clamp(min=0),
               "browDownRight": 0.8 * (-wave(3)).clamp(min=0)}
    params = model.neutral_params(frames)
    for name, value in actions.items():
        params.face[:, ARKIT_FACE_ACTIONS.index(name)] = value
    params.head[:, 1] = math.radians(15) * torch.sin(2 * math.pi * t + 1)
    params.head[:, 0] = math.radians(8) * torch.sin(2 * math.pi * t)
    return params, params.face.clone()


def anny_driving_clip(model, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Painted anny frames (640x360, the face close) of :func:`anny_driving_params` and the
    known actions."""
    params, truth = anny_driving_params(model, frames)
    with torch.no_grad():
        vertices = model(params)
    camera = paths.static(1, paths.View(distance=0.7, fov=30.0))
    return render_face_images(model, vertices, camera, 640, 360), truth


def section_job(b: Bench, figures: dict) -> None:
    print(f"## The job on real driving clips: the {DRIVEN} avatar, the photo's camera, {b.size}x{b.size}\n")
    clips = {"woman_video": read_clip("woman_video", WOMAN_LAUGH[0], b.args.frames, WOMAN_LAUGH[1])}
    if not b.args.quick:
        clips["man_video"] = read_clip("man_video", 0, b.args.frames)
    rows, pose_rows, measured = [], [], {}
    for name, (clip, kept) in clips.items():
        job = run_job(b, clip)
        job["clip"] = clip
        b.jobs[name] = job
        m = measure_job(b, job)
        measured[name] = job["measured"] = m
        p = m["pearson"]
        rows.append([f"{name} ({len(clip)} fr, {kept[0]}-{kept[-1]})"] + [p[c] for c in CHANNELS] + [m["code_mae"]])
        pose_rows.append([name, median(m["head_error"].tolist()), float(m["head_error"].quantile(0.9)),
                          median(m["arkit_head_error"].tolist()),
                          float(rotation_error_deg(relative(m["truth_heads"]), torch.eye(3).expand(len(clip), 3, 3)).max()),
                          f"{len(m['tracker_missed'])}/{len(clip)}", m["identity"]["median"],
                          f"{m['identity']['found']:.2f} (every {m['identity_step']})"])
        show = spread(len(clip), 6)
        save_strip(b.out / f"job_{name}.png", [clip[show], job["rendered"][show], face_crops(b, job["rendered"][show])])

    # Pooled over the real clips (frames of both, one correlation per channel).
    pooled_read = torch.cat([m["read"] for m in measured.values()])
    pooled_driving = torch.cat([b.jobs[n]["codes"].codes for n in measured])
    pooled = correlations(pooled_read, pooled_driving)
    if len(measured) > 1:
        rows.append(["pooled"] + [pooled[c] for c in CHANNELS] + [None])

    # anny driving clip with known actions: encoded, drives the avatar (pose held), re-read.
    n = len(clips["woman_video"][0])
    anny_clip, truth = anny_driving_clip(b.model, n)
    codes, _ = b.encoder.encode_images(anny_clip, video=True)
    params, camera, _ = avatar_controls(b.avatar, None, codes)
    rendered = b.render(params, camera)
    read, _ = b.encoder.encode_images(rendered, video=True)
    anny = {"vs_driving_codes": correlations(read.codes, codes.codes), "vs_truth": correlations(read.codes, truth),
            "driving_codes_vs_truth": correlations(codes.codes, truth)}
    for key, label in (("vs_driving_codes", "anny clip: re-read vs driving codes"),
                       ("vs_truth", "anny clip: re-read vs known actions"),
                       ("driving_codes_vs_truth", "anny clip: driving codes vs known (encoder alone)")):
        rows.append([f"{label} ({n} fr)"] + [anny[key][c] for c in CHANNELS] + [None])
    show = spread(n, 6)
    save_strip(b.out / "job_anny_clip.png", [anny_clip[show], rendered[show], face_crops(b, rendered[show])])

    print("### expression_pearson: the ARKit encoder on the rendered frames against the driving codes "
          "(target >= 0.7 for jawOpen and the smiles)\n")
    table(["clip"] + list(CHANNELS) + ["MAE"], rows)
    print("driving codes' standard deviation (a low one makes the correlation meaningless): " + "; ".join(
        f"{name}: " + ", ".join(f"{c} {m['driving_std'][c]:.2f}" for c in CHANNELS) for name, m in measured.items()))
    print()
    print("### head_pose_error_deg and identity with the driving expressions\n")
    table(["clip", "head err median (body tracker)", "p90", "head err median (ARKit)", "largest driven turn deg",
           "tracker missed", "identity median", "found (frames)"], pose_rows)
    for name, job in b.jobs.items():
        t = job["times"]
        print(f"{name}: detect {t['detect']:.1f} s, track {t['track']:.1f} s, expression {t['expression']:.1f} s, "
              f"controls + render {t['render']:.1f} s ({len(job['rendered'])} frames)"
              + (f"; {'; '.join(job['notes'])}" if job["notes"] else ""))
    print()

    head = [float(e) for m in measured.values() for e in m["head_error"]]
    arkit_head = [float(e) for m in measured.values() for e in m["arkit_head_error"]]
    drive_ident = [d for m in measured.values() for d in m["identity"]["per_frame"]]
    figures["expression_pearson"] = {**{k: m["pearson"] for k, m in measured.items()}, "pooled": pooled,
                                     "anny_clip": anny}
    figures["expression_driving_std"] = {k: m["driving_std"] for k, m in measured.items()}
    figures["head_pose_error_deg_median"] = {**{k: median(m["head_error"].tolist()) for k, m in measured.items()},
                                             "pooled": median(head)}
    figures["head_pose_error_deg_median_arkit"] = {
        **{k: median(m["arkit_head_error"].tolist()) for k, m in measured.items()}, "pooled": median(arkit_head)}
    figures.setdefault("identity_distance", {})["driving_expressions"] = {
        "median": median(drive_ident), "found": sum(d is not None for d in drive_ident) / len(drive_ident)}


# ----------------------------------------------------------------------------- 3. camera orbit

def section_orbit(b: Bench, figures: dict) -> None:
    n = b.args.orbit_frames
    print(f"## Camera orbit -30..+30 degrees ({n} views), the photo's pose and expression\n")
    yaws = torch.linspace(-30, 30, n)
    ref = int(yaws.abs().argmin())
    camera = cameras(b.view(), yaws.tolist())
    params, camera, _ = avatar_controls(b.avatar, camera=camera)
    rendered = b.render(params.select([0] * n), camera)
    tracked, missed = b.track_heads(rendered)
    truth = head_rotations(b.model, params.select([0] * n), camera)
    expected = yaw_deg(relative(truth, ref))
    measured = yaw_deg(relative(tracked, ref))
    error = (measured - expected).abs()
    read, read_report = b.encoder.encode_images(rendered, video=True)
    arkit_error = (yaw_deg(relative(arkit_heads(read_report), ref)) - expected).abs()
    ident = identity(b, rendered, params, camera)
    near = [d for d, y in zip(ident["per_frame"], yaws) if abs(y) <= 15 + 1e-6]
    far = [d for d, y in zip(ident["per_frame"], yaws) if 15 + 1e-6 < abs(y) <= 30 + 1e-6]
    rows = []
    for i in spread(n, 9):
        rows.append([f"{float(yaws[i]):+.1f}", float(expected[i]), float(measured[i]), float(error[i]),
                     float(arkit_error[i]), ident["per_frame"][i]])
    table(["camera yaw", "expected head yaw", "tracked (body)", "error", "error (ARKit)", "identity"], rows)
    print(f"camera_yaw_error_deg_median: {median(error.tolist()):.2f} (body tracker; yaw relative to the photo's "
          f"view, frame {ref}), {median(arkit_error.tolist()):.2f} (ARKit encoder); tracker missed {len(missed)}/{n}.")
    print(f"identity (own expression): within +-15 deg median {fmt(median(near))} found "
          f"{sum(d is not None for d in near) / max(len(near), 1):.2f}; 15-30 deg median {fmt(median(far))} found "
          f"{sum(d is not None for d in far) / max(len(far), 1):.2f}\n")
    save_strip(b.out / "orbit.png", [rendered[spread(n, 7)], face_crops(b, rendered[spread(n, 7)])])
    figures["camera_yaw_error_deg_median"] = median(error.tolist())
    figures["camera_yaw_error_deg_median_arkit"] = median(arkit_error.tolist())
    ids = figures.setdefault("identity_distance", {})
    ids["own_expression_within_15"] = {"median": median(near),
                                       "found": sum(d is not None for d in near) / max(len(near), 1)}
    ids["own_expression_15_to_30"] = {"median": median(far), "found": sum(d is not None for d in far) / max(len(far), 1)}


# ----------------------------------------------------------------------------- 4. disentanglement

def section_disentanglement(b: Bench, figures: dict) -> None:
    job = b.jobs["woman_video"]
    n_all = len(job["rendered"])
    pick = spread(n_all, b.args.disentangle_frames)
    n = len(pick)
    print(f"## Disentanglement ({n} frames of the woman's job, evenly spread over its {n_all})\n")
    params = job["params"].select(pick)
    view = b.view()
    cam0, cam15 = cameras(view, [0.0]), cameras(view, [15.0])
    base = job["rendered"][pick]
    turned = b.render(params, cam15)
    codes0, rep0 = b.encoder.encode_images(base, video=True)
    codes15, rep15 = b.encoder.encode_images(turned, video=True)
    code_change = (codes0.codes - codes15.codes).abs().max(1).values
    code_mean = (codes0.codes - codes15.codes)[:, b.encoder.free_index].abs().mean(1)
    heads0, miss0 = b.track_heads(base)
    heads15, miss15 = b.track_heads(turned)
    # The head's world rotation as each view reads it: the known camera rotation removed.
    world0 = cam0.w2c[0, :3, :3].T @ heads0
    world15 = cam15.w2c[0, :3, :3].T @ heads15
    camera_head = rotation_error_deg(world0, world15)
    # Expression only: the same pose and camera with the photo's own expression.
    own = with_face(params, b.avatar.params.face)
    neutral = b.render(own, cam0)
    heads_own, miss_own = b.track_heads(neutral)
    expression_head = rotation_error_deg(heads0, heads_own)
    _codes, rep_own = b.encoder.encode_images(neutral, video=True)
    arkit_camera_head = rotation_error_deg(cam0.w2c[0, :3, :3].T @ arkit_heads(rep0),
                                           cam15.w2c[0, :3, :3].T @ arkit_heads(rep15))
    arkit_expression_head = rotation_error_deg(arkit_heads(rep0), arkit_heads(rep_own))
    save_strip(b.out / "disentanglement.png", [face_crops(b, x[spread(n, 6)]) for x in (base, turned, neutral)])
    ref = {} if b.args.quick else anny_disentanglement(b, n)
    rows = [["camera only (yaw 0 -> 15)", "codes max abs over channels", median(code_change.tolist()),
             float(code_change.max()), TARGETS["camera_only_code_change"][0]],
            ["camera only (yaw 0 -> 15)", "head world rotation deg (body tracker)", median(camera_head.tolist()),
             float(camera_head.max()), TARGETS["camera_only_head_change_deg"][0]],
            ["camera only (yaw 0 -> 15)", "head world rotation deg (ARKit)", median(arkit_camera_head.tolist()),
             float(arkit_camera_head.max()), TARGETS["camera_only_head_change_deg"][0]],
            ["expression only (driving -> photo's)", "head rotation deg (body tracker)", median(expression_head.tolist()),
             float(expression_head.max()), TARGETS["expression_only_head_change_deg"][0]],
            ["expression only (driving -> photo's)", "head rotation deg (ARKit)",
             median(arkit_expression_head.tolist()), float(arkit_expression_head.max()),
             TARGETS["expression_only_head_change_deg"][0]]]
    for key, label in (("camera_only_code_change", "codes max abs over channels"),
                       ("camera_only_head_change_deg", "head world rotation deg (body tracker)"),
                       ("camera_only_head_change_deg_arkit", "head world rotation deg (ARKit)"),
                       ("expression_only_head_change_deg", "head rotation deg (body tracker)"),
                       ("expression_only_head_change_deg_arkit", "head rotation deg (ARKit)")):
        if key not in ref:
            continue
        change = "camera only (yaw 0 -> 15)" if key.startswith("camera") else "expression only (clip's -> neutral)"
        rows.append([f"reference, painted anny: {change}", label, median(ref[key].tolist()), float(ref[key].max()),
                     TARGETS[key.removesuffix("_arkit")][0]])
    table(["change", "re-read", "median over frames", "max", "target <"], rows)
    if ref:
        print("the painted anny rows are the readers' own share (exact geometry, no avatar): the same changes on "
              f"{n} frames of a painted anny clip (head turning +-15 and nodding +-8 deg, known actions), 512x512, "
              "30 deg field of view.\n")
    if miss0 or miss15 or miss_own:
        print(f"tracker missed frames: base {miss0}, turned {miss15}, photo's expression {miss_own}\n")
    per_channel = (codes0.codes - codes15.codes).abs().median(0).values
    top = per_channel.argsort(descending=True)[:4].tolist()
    print(f"camera only: the mean abs change over the encoder's {len(b.encoder.free_index)} free channels, median "
          f"over frames: {median(code_mean.tolist()):.3f}; the channels that move most (median abs change): "
          + ", ".join(f"{ARKIT_FACE_ACTIONS[i]} {float(per_channel[i]):.3f}" for i in top) + "\n")
    figures["disentanglement"] = {"frames": n, "camera_only_code_change": median(code_change.tolist()),
                                  "camera_only_code_change_mean_abs": median(code_mean.tolist()),
                                  "camera_only_head_change_deg": median(camera_head.tolist()),
                                  "expression_only_head_change_deg": median(expression_head.tolist()),
                                  "camera_only_head_change_deg_arkit": median(arkit_camera_head.tolist()),
                                  "expression_only_head_change_deg_arkit": median(arkit_expression_head.tolist()),
                                  "painted_anny_reference": {k: median(v.tolist()) for k, v in ref.items()}}


def anny_disentanglement(b: Bench, n: int) -> dict:
    """The same changes read on painted anny renders (exact geometry): what the encoder and
    the tracker contribute by themselves."""
    params, _truth = anny_driving_params(b.model, n)
    neutral = with_face(params, torch.zeros(1, params.face.shape[1]))
    view = paths.View(distance=1.0, fov=30.0, target=(0.0, 0.05, 0.0))
    cam0, cam15 = cameras(view, [0.0]), cameras(view, [15.0])
    with torch.no_grad():
        vertices, still = b.model(params), b.model(neutral)
    base = render_face_images(b.model, vertices, cam0, 512, 512)
    turned = render_face_images(b.model, vertices, cam15, 512, 512)
    plain = render_face_images(b.model, still, cam0, 512, 512)
    codes0, rep0 = b.encoder.encode_images(base, 30.0, video=True)
    codes15, rep15 = b.encoder.encode_images(turned, 30.0, video=True)
    _codes, rep_plain = b.encoder.encode_images(plain, 30.0, video=True)
    heads0, _ = b.track_heads(base, 30.0)
    heads15, _ = b.track_heads(turned, 30.0)
    heads_plain, _ = b.track_heads(plain, 30.0)
    save_strip(b.out / "disentanglement_anny.png", [base[spread(n, 6)], turned[spread(n, 6)], plain[spread(n, 6)]])
    return {"camera_only_code_change": (codes0.codes - codes15.codes).abs().max(1).values,
            "camera_only_head_change_deg": rotation_error_deg(cam0.w2c[0, :3, :3].T @ heads0,
                                                              cam15.w2c[0, :3, :3].T @ heads15),
            "expression_only_head_change_deg": rotation_error_deg(heads0, heads_plain),
            "camera_only_head_change_deg_arkit": rotation_error_deg(cam0.w2c[0, :3, :3].T @ arkit_heads(rep0),
                                                                    cam15.w2c[0, :3, :3].T @ arkit_heads(rep15)),
            "expression_only_head_change_deg_arkit": rotation_error_deg(arkit_heads(rep0), arkit_heads(rep_plain))}


def with_face(params, face: torch.Tensor):
    """``params`` with every frame's face actions set to ``face [1, 52]``."""
    return type(params)(**{**params.tensors(), "face": face.expand(params.frames, -1).clone()})


# ----------------------------------------------------------------------------- 5. speed

def section_speed(b: Bench, figures: dict) -> None:
    job = b.jobs["woman_video"]
    n = len(job["rendered"])
    print(f"## Speed at {b.size}x{b.size}, {torch.get_num_threads()} threads ({n} frames of the woman's clip; "
          f"interleaved runs after a warm-up each)\n")
    orbit = paths.orbit(n, replace(b.view(), yaw=-30.0), 30.0)
    params = job["params"]
    fns = {"orbit": lambda: b.render(params, orbit), "static": lambda: b.render(params, b.avatar.camera),
           "job": lambda: run_job(b, job["clip"], orbit)}
    _, times = timed_side_by_side(fns, b.args.repeats)
    labels = {"orbit": "render alone (orbit -30..30, driving pose + expression)",
              "static": "render alone (the photo's camera, driving pose + expression)",
              "job": "whole job (detect + track + expression + controls + render, the orbit)"}
    rows = []
    for name, label in labels.items():
        seconds = statistics.median(times[name])
        rows.append([label, seconds, n / seconds, n / min(times[name]), ", ".join(f"{n / s:.1f}" for s in times[name])])
    table(["what", "seconds (median)", "frames/s", "best run frames/s", "runs (frames/s)"], rows)
    t = job["times"]
    print(f"the metrics' job run, split: detect {t['detect']:.1f} s, track {t['track']:.1f} s, expression "
          f"{t['expression']:.1f} s, controls + render {t['render']:.1f} s; the machine's load average now "
          f"{os.getloadavg()[0]:.2f} (other processes share the cores: the best run is the least disturbed)\n")
    figures["frames_per_second"] = {
        "render": n / statistics.median(times["orbit"]), "render_best": n / min(times["orbit"]),
        "render_runs": [n / s for s in times["orbit"]],
        "render_static_camera": n / statistics.median(times["static"]),
        "whole_job": n / statistics.median(times["job"]), "whole_job_best": n / min(times["job"]),
        "whole_job_runs": [n / s for s in times["job"]], "frames": n}
    figures["metrics_job_seconds"] = t


# ----------------------------------------------------------------------------- 6. where it breaks

def section_breaks(b: Bench, figures: dict) -> None:
    print("## Where it breaks\n")
    yaws = [s * y for y in BREAK_YAWS for s in ((1,) if y == 0 else (-1, 1))]
    params, camera, _ = avatar_controls(b.avatar, camera=cameras(b.view(), yaws))
    params = params.select([0] * len(yaws))
    rendered = b.render(params, camera)
    ident = identity(b, rendered, params, camera)
    # Diagnostic: the same views without the hair/clothing layer (the template and background only).
    layer = b.avatar.layer
    bare = replace(b.avatar, layer=Layer(layer.vertices[:0], layer.faces[:0], layer.skin_weights[:0]))
    bare_ident = identity(b, render_avatar(bare, params, camera, b.size, b.size)[0], params, camera)
    rows, by_yaw = [], {}
    for y in BREAK_YAWS:
        views = [i for i, v in enumerate(yaws) if abs(v) == y]
        d = [ident["per_frame"][i] for i in views]
        d_bare = [bare_ident["per_frame"][i] for i in views]
        by_yaw[y] = {"median": median(d), "found": sum(x is not None for x in d) / len(d),
                     "per_view": d, "without_layer": d_bare}
        rows.append([f"{y}" if y == 0 else f"+-{y}", by_yaw[y]["median"], f"{by_yaw[y]['found']:.2f}",
                     ", ".join(fmt(x) for x in d), ", ".join(fmt(x) for x in d_bare)])
    print("### identity against the view's yaw (the photo's expression)\n")
    table(["yaw deg", "identity median", "found", "per view (-, +)", "without the hair/clothing layer (diagnostic)"],
          rows)
    order = sorted(range(len(yaws)), key=lambda i: yaws[i])
    save_strip(b.out / "breaks_yaw.png", [rendered[order], face_crops(b, rendered[order])])

    # The hand over the face (woman's clip), against the laughing part measured above.
    count = b.args.hand_frames
    clip, kept = read_clip("woman_video", WOMAN_HAND[0], count, WOMAN_HAND[1])
    job = run_job(b, clip)
    rows, hand = [], {}
    for name, j, frames in (("hand over the mouth", job, kept),
                            ("laughing (the job above)", b.jobs["woman_video"], None)):
        codes, report, track = j["codes"].codes, j["report"], j["track"]
        heads = head_rotations(b.model, track.driving.params, track.driving.camera)
        jitter = rotation_error_deg(heads[1:], heads[:-1])
        code_step = (codes[1:] - codes[:-1]).abs().max(1).values
        residual = report.residual_px[~torch.isnan(report.residual_px)]
        ident = j["measured"]["identity"] if "measured" in j else identity(b, j["rendered"], j["params"], j["camera"])
        stats = {"frames": len(codes), "face_mesh_missed": len(report.filled_frames),
                 "tracker_missed": len(track.driving.report.filled_frames),
                 "arkit_residual_px_median": float(residual.median()) if len(residual) else None,
                 "head_step_deg_median": median(jitter.tolist()), "head_step_deg_max": float(jitter.max()),
                 "code_step_median": median(code_step.tolist()), "code_step_max": float(code_step.max()),
                 "identity_median": ident["median"], "identity_found": ident["found"],
                 "jawOpen_median": float(codes[:, ARKIT_FACE_ACTIONS.index("jawOpen")].median()),
                 "mouthSmile_median": float(codes[:, [ARKIT_FACE_ACTIONS.index("mouthSmileLeft"),
                                                      ARKIT_FACE_ACTIONS.index("mouthSmileRight")]].mean(1).median())}
        hand[name] = stats
        rows.append([name + (f" (frames {frames[0]}-{frames[-1]}, step {WOMAN_HAND[1]})" if frames else ""),
                     stats["frames"], stats["face_mesh_missed"], stats["tracker_missed"],
                     stats["arkit_residual_px_median"], stats["head_step_deg_median"], stats["head_step_deg_max"],
                     stats["code_step_median"], stats["code_step_max"], stats["jawOpen_median"],
                     stats["mouthSmile_median"], stats["identity_median"], f"{stats['identity_found']:.2f}"])
    print("### the woman's hand over her mouth: the driving side (detection, fit) and the rendered frames\n")
    table(["clip", "frames", "face mesh missed", "tracker missed", "ARKit residual px", "head step deg median",
           "max", "code step median", "max", "jawOpen median", "smile median", "identity", "found"], rows)
    if job["notes"]:
        print("notes: " + "; ".join(job["notes"]))
    show = spread(len(clip), 7)
    save_strip(b.out / "breaks_hand.png", [clip[show], face_crops(b, job["rendered"][show])])
    print()
    figures["breaks"] = {"identity_vs_yaw": {str(k): v for k, v in by_yaw.items()}, "hand_over_face": hand}


# ----------------------------------------------------------------------------- main

def misses(figures: dict) -> list[str]:
    out = []

    def check(name: str, value, key: str) -> None:
        target, kind = TARGETS[key]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out.append(f"{name}: not measured")
        elif (kind == "min" and value < target) or (kind == "max" and value > target):
            out.append(f"{name}: {value:.3f} (target {'>=' if kind == 'min' else '<='} {target})")

    for photo, p in figures.get("round_trip_psnr_db", {}).items():
        for where, v in p.items():
            check(f"round_trip_psnr_db.{photo}.{where}", v, "round_trip_psnr_db")
    for clip, p in figures.get("expression_pearson", {}).items():
        if clip == "anny_clip":
            for c in PEARSON_TARGETED:
                check(f"expression_pearson.anny_clip.vs_driving_codes.{c}", p["vs_driving_codes"][c], "expression_pearson")
            continue
        for c in PEARSON_TARGETED:
            check(f"expression_pearson.{clip}.{c}", p[c], "expression_pearson")
    for clip, v in figures.get("head_pose_error_deg_median", {}).items():
        check(f"head_pose_error_deg_median.{clip}", v, "head_pose_error_deg_median")
    if "camera_yaw_error_deg_median" in figures:
        check("camera_yaw_error_deg_median", figures["camera_yaw_error_deg_median"], "camera_yaw_error_deg_median")
    ids = figures.get("identity_distance", {})
    for key, target in (("own_expression_within_15", "identity_within_15"), ("own_expression_15_to_30", "identity_at_30"),
                        ("driving_expressions", "identity_driving")):
        if key in ids:
            check(f"identity_distance.{key}", ids[key]["median"], target)
    for key, v in figures.get("disentanglement", {}).items():
        if key.removesuffix("_arkit") in TARGETS:
            check(f"disentanglement.{key}", v, key.removesuffix("_arkit"))
    if "frames_per_second" in figures:
        check("frames_per_second.render", figures["frames_per_second"]["render"], "render_frames_per_second")
    if DRIVEN in figures.get("build_seconds", {}):
        check(f"build_seconds.{DRIVEN}", figures["build_seconds"][DRIVEN], "build_seconds")
    return out


def section_memory(b: Bench, figures: dict) -> None:
    """Render Avatar's working memory against the number of frames: each count rendered in
    a fresh process (the astronaut, an orbit, the photo's pose and expression) into outputs
    allocated (and touched) before the baseline; working memory = peak RSS - RSS before
    rendering: flat in the number of frames when the chunks are all it holds."""
    size = b.args.size if not b.args.quick else 256
    counts = (81, 729) if not b.args.quick else (9, 81)
    rows = {}
    for count in counts:
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(count), str(size)], capture_output=True,
                             text=True, check=True)
        rows[count] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"## Memory: Render Avatar at {size}x{size}, outputs allocated once (fresh process per count)\n")
    print("| frames | RSS before MB (outputs included) | outputs MB | peak RSS MB | working MB (peak - before) |")
    print("|---|---|---|---|---|")
    for count, r in rows.items():
        print(f"| {count} | {r['before_mb']:.0f} | {r['output_mb']:.0f} | {r['peak_mb']:.0f} | {r['working_mb']:.0f} |")
    print()
    figures["render_memory_mb"] = {str(k): round(v["working_mb"], 1) for k, v in rows.items()}


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in MB."""
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def _memory_child(count: int, size: int) -> None:
    model = load_anny_printing()
    photo = read_photo("astronaut")
    avatar = build_avatar(model, load_face_correspondence(anny_cache_dir(), model), photo)
    view = paths.reference_view(avatar.camera)
    camera = paths.orbit(count, paths.View(yaw=-30, distance=view.distance, focal=view.focal), yaw_end=30)
    params = avatar.params.select([0] * count)
    images, masks = torch.empty(count, size, size, 3), torch.empty(count, size, size)
    images.zero_(), masks.zero_()  # the outputs' pages resident before the baseline
    with open("/proc/self/clear_refs", "w") as f:  # resets the peak (VmHWM) to the current RSS
        f.write("5")
    before = _status_mb("VmRSS")
    render_avatar(avatar, params, camera, size, size, out=(images, masks))
    peak = _status_mb("VmHWM")
    output = (images.numel() + masks.numel()) * 4 / 2**20
    print(json.dumps({"before_mb": before, "output_mb": output, "peak_mb": peak, "working_mb": peak - before}))


SECTIONS = {"round_trip": section_round_trip, "job": section_job, "orbit": section_orbit,
            "disentanglement": section_disentanglement, "speed": section_speed, "breaks": section_breaks,
            "memory": section_memory}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--memory-child":
        _memory_child(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=None, help="driving frames per clip (default 81; quick 13)")
    parser.add_argument("--size", type=int, default=512, help="render size (square)")
    parser.add_argument("--repeats", type=int, default=None, help="timed render runs (default 3; quick 1)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--quick", action="store_true", help="a 1-2 minute smoke run (few frames, one clip)")
    parser.add_argument("--out", default=str(ROOT / "output" / "benchmarks" / "avatar"), help="PNG strips go here")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset of "
                        + ", ".join(SECTIONS) + " (round_trip and job are needed by the rest)")
    args = parser.parse_args()
    quick = args.quick
    args.frames = args.frames or (13 if quick else 81)
    args.repeats = args.repeats or (1 if quick else 3)
    args.orbit_frames = 7 if quick else 31
    args.identity_frames = 7 if quick else 27  # rendered job frames given to dlib (evenly spread)
    args.disentangle_frames = 7 if quick else 27
    args.hand_frames = 7 if quick else 27
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average "
          f"{load:.2f}; render size {args.size}x{args.size}; {args.frames} driving frames per clip"
          + (" (--quick: smoke-run sizes, figures are indicative only)" if quick else ""))
    print(f"subsets: identity on {args.identity_frames} evenly spread rendered frames per clip, disentanglement on "
          f"{args.disentangle_frames} frames, orbit {args.orbit_frames} views, hand-over-face {args.hand_frames} "
          f"frames; PNG strips in {args.out}\n", flush=True)
    figures: dict = {"quick": quick, "size": args.size, "frames": args.frames, "threads": torch.get_num_threads(),
                     "load_average": round(load, 2)}
    start = time.perf_counter()
    bench = Bench(args)
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    seconds = {}
    for name, section in SECTIONS.items():
        if name in wanted or name in ("round_trip", "job"):
            t = time.perf_counter()
            section(bench, figures)
            seconds[name] = time.perf_counter() - t
    figures["section_seconds"] = seconds
    figures["misses"] = misses(figures)
    figures["targets"] = {k: f"{'>=' if kind == 'min' else '<='} {v}" for k, (v, kind) in TARGETS.items()}
    print("## Targets missed\n")
    print("\n".join(f"- {m}" for m in figures["misses"]) or "none")
    print("\nsections: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
          + f"; total {time.perf_counter() - start:.0f} s")
    print(json.dumps(rounded(figures)))


if __name__ == "__main__":
    main()
