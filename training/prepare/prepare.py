"""A folder of real videos -> training samples, with the pack's own tools.

Every video file under the folder (``VIDEO_SUFFIXES``, recursive, hidden files left out) is
one item; items are sorted by relative path and spread over shards by ``shard_range``, so
any number of jobs can prepare one folder into one output folder at once. Per video:

1. read at ``fps`` (``video_reader``), downscaled to a working size (the shorter side at most
   ``WORK_SCALE`` times the output's larger side) that keeps detail for the crop;
2. MediaPipe's face mesh on every frame (tracking mode): the face boxes for the crops and the
   reference candidates;
3. per clip (``clips``): the crop around the clip's faces, resized to ``width x height``;
   MediaPipe landmarks of the crop (``detect_landmarks``, as Track Body Mesh runs it), the
   anny upper body fitted to them (``track_body``: one static frontal camera, its field of
   view fitted unless ``video_fov`` is given), the track's normal maps and mask from its own
   camera (``render_track_normals``, as Render Normal Maps renders them), the expression
   codes of the crop (the encoder; the built-in ARKit fit is given the track's field of
   view) and the reference frame, cropped the same way: the same static camera, stored as
   ``reference_camera``;
4. the sample ``samples/real-<slug>-<clip>.safetensors`` (``training.data.sample``) and its
   manifest line in ``manifests/real-<shard>-of-<n>.jsonl``, keyed ``<video>#<clip>``.

Skips (recorded in the manifest with the reason, returned in the report, never retried):
an unreadable file or a video shorter than one clip or without any face (key ``<video>``),
a clip with a face in fewer than ``MIN_FACE_SHARE`` of its frames or where tracking or the
encoder finds none (key ``<video>#<clip>``).

Resuming: finished and skipped items are not redone. Each manifest line of a video carries
``clips_in_video``, so a rerun knows a finished video without decoding it; a sample file that
exists but is not listed (a job killed between writing it and listing it) is read back,
checked and listed (``ShardManifest.adopt_existing``) instead of being made again.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ...models.errors import InputError
from ..data.manifest import SAMPLE_DIR, ShardManifest, entry_for, shard_range
from ..data.sample import ClipSample, to_uint8_images, write_sample
from . import clips as cl
from .video_reader import DEFAULT_FPS, Video, VideoReadError, read_video

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")
MANIFEST_NAME = "real"
BUILT_IN_ENCODER = "builtin"
MIN_FACE_SHARE = 0.5  # a clip needs a detected face in at least this share of its frames
WORK_SCALE = 4  # working resolution: shorter side <= this times the output's larger side
DETECT_CHUNK = 64  # frames converted to float and detected at once (bounded memory)

Progress = Callable[[int, int, str], None]  # (videos done, videos of this shard, message)


@dataclass(frozen=True)
class SkippedItem:
    """An item that produced no sample: its manifest key and why."""

    key: str
    reason: str


@dataclass
class PrepareReport:
    """What one ``prepare_folder`` run did for its shard.

    Attributes:
        videos: the shard's video files (relative paths).
        prepared: sample files written by this run (relative to the output folder).
        adopted: sample files found unlisted and listed by this run.
        done_before: clips already listed when the run started.
        skipped: items this run skipped, with reasons.
        skipped_before: items skipped by earlier runs (not retried).
        clip_seconds: wall time of every prepared clip.
        seconds: wall time of the run.
    """

    shard: int
    num_shards: int
    videos: list[str] = field(default_factory=list)
    prepared: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    done_before: int = 0
    skipped: list[SkippedItem] = field(default_factory=list)
    skipped_before: list[SkippedItem] = field(default_factory=list)
    clip_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"shard {self.shard} of {self.num_shards}: {len(self.videos)} video(s); {len(self.prepared)} clip(s) "
                 f"prepared, {len(self.adopted)} adopted, {self.done_before} listed before; "
                 f"{len(self.skipped)} item(s) skipped now, {len(self.skipped_before)} before; {self.seconds:.1f} s."]
        if self.clip_seconds:
            lines.append(f"per clip: mean {sum(self.clip_seconds) / len(self.clip_seconds):.1f} s, "
                         f"max {max(self.clip_seconds):.1f} s.")
        for title, items in (("skipped", self.skipped), ("skipped before", self.skipped_before)):
            lines += [f"{title}: {item.key}: {item.reason}" for item in items]
        return "\n".join(lines)


# -- items and names -----------------------------------------------------------------------------

def find_videos(videos_dir: str | os.PathLike) -> list[str]:
    """Relative POSIX paths of the video files under ``videos_dir`` (recursive, following
    links, hidden files and folders left out), sorted."""
    root = Path(videos_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"videos folder {root} does not exist or is not a folder")
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and name.lower().endswith(VIDEO_SUFFIXES):
                found.append((Path(folder) / name).relative_to(root).as_posix())
    return sorted(found)


def video_slug(relative: str) -> str:
    """A file-name-safe, unique name of a video: its path in lower-case words and a short hash
    of the path (``a/b.mp4`` and ``a-b.mp4`` differ)."""
    stem = relative.rsplit(".", 1)[0].lower()
    words = re.sub(r"[^a-z0-9]+", "-", stem).strip("-")[:48].strip("-") or "video"
    return f"{words}-{hashlib.sha1(relative.encode()).hexdigest()[:8]}"


def clip_key(relative: str, clip: int) -> str:
    """The manifest key of a clip: ``<relative video path>#<clip number>``."""
    return f"{relative}#{clip}"


def sample_file(relative: str, clip: int) -> str:
    """The clip's sample file, relative to the output folder."""
    return f"{SAMPLE_DIR}/real-{video_slug(relative)}-{clip:04d}.safetensors"


# -- settings and tools --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Settings:
    frames: int
    width: int
    height: int
    fps: float
    stride: int | None
    max_clips: int | None
    video_fov: float | None
    reference_offset: int | None
    iterations: int
    smoothness: float
    work_short_side: int
    device: str

    def info(self) -> dict:
        return {"frames": self.frames, "width": self.width, "height": self.height, "fps": self.fps,
                "stride": self.stride or self.frames, "max_clips_per_video": self.max_clips,
                "video_fov": self.video_fov, "reference_offset": self.reference_offset,
                "iterations": self.iterations, "smoothness": self.smoothness}


class _Tools:
    """The body model and the expression encoder, loaded when the first clip needs them (a
    rerun with nothing left to do loads nothing)."""

    def __init__(self, encoder, anny_model, anny_cache):
        from ...models.expression.encoders import ExpressionEncoder

        self._encoder, self._model, self.anny_cache = encoder, anny_model, anny_cache
        # What can be checked without loading anything fails before any video is read.
        if anny_model is None and anny_cache is None:
            raise ValueError("give anny_model or anny_cache (the anny cache folder, e.g. ComfyUI's models/anny)")
        if isinstance(encoder, ExpressionEncoder):
            return
        choice = BUILT_IN_ENCODER if encoder is None else str(encoder)
        if choice == BUILT_IN_ENCODER and anny_cache is None:
            raise ValueError("the built-in ARKit encoder needs anny_cache (its face correspondence is cached "
                             "there); give anny_cache or a loaded ExpressionEncoder")
        if choice != BUILT_IN_ENCODER and not Path(choice).is_file():
            raise FileNotFoundError(f"expression encoder file {choice} not found; give a learned encoder "
                                    f"(.safetensors) or '{BUILT_IN_ENCODER}'")

    def check_detector(self) -> None:
        from ...models.tracking.mediapipe_detector import INSTALL_HINT, is_available

        if not is_available():
            raise RuntimeError(f"real-video preparation needs MediaPipe's face mesh and pose: {INSTALL_HINT}")

    @property
    def model(self):
        if self._model is None:
            from ...models.body import load_anny

            self._model = load_anny(self.anny_cache)
        return self._model

    @property
    def encoder(self):
        from ...models.expression.encoders import ExpressionEncoder

        if isinstance(self._encoder, ExpressionEncoder):
            return self._encoder
        choice = BUILT_IN_ENCODER if self._encoder is None else str(self._encoder)
        if choice == BUILT_IN_ENCODER:
            from ...models.expression.arkit_encoder import ArkitEncoder
            from ...models.expression.face_correspondence import load_face_correspondence

            corr = load_face_correspondence(self.anny_cache, self.model)
            self._encoder = ExpressionEncoder.built_in(ArkitEncoder(self.model, corr))
        else:
            from ...models.expression.encoder_file import load_image_encoder

            network, name = load_image_encoder(choice, input_name="encoder")
            self._encoder = ExpressionEncoder.learned(network, name)
        return self._encoder


def _check_arguments(frames, width, height, fps, stride, max_clips, shard, num_shards, video_fov,
                     reference_offset) -> None:
    cl.check_clip_frames(frames)
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 32:
            raise ValueError(f"{name} must be a whole number of pixels >= 32 (MediaPipe's minimum), got {value!r}")
        if value % 16:
            raise ValueError(f"{name} must be a multiple of 16 for Wan (8x VAE, 2x2 patches), got {value}")
    if not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    if stride is not None and (not isinstance(stride, int) or stride < 1):
        raise ValueError(f"stride must be a whole number >= 1, got {stride!r}")
    if max_clips is not None and (not isinstance(max_clips, int) or max_clips < 1):
        raise ValueError(f"max_clips_per_video must be a whole number >= 1, got {max_clips!r}")
    shard_range(0, shard, num_shards)  # its error names --shard and --num-shards
    if video_fov is not None and not 1.0 < float(video_fov) < 179.0:
        raise ValueError(f"video_fov must be between 1 and 179 degrees, got {video_fov!r}")
    if reference_offset is not None and (not isinstance(reference_offset, int) or reference_offset < 1):
        raise ValueError(f"reference_offset must be a whole number of frames >= 1, got {reference_offset!r}")


# -- the folder ----------------------------------------------------------------------------------

def prepare_folder(videos_dir: str | os.PathLike, out_dir: str | os.PathLike, *, frames: int = 17,
                   width: int = 128, height: int = 128, fps: float = DEFAULT_FPS, stride: int | None = None,
                   max_clips_per_video: int | None = None, encoder=BUILT_IN_ENCODER, anny_model=None,
                   anny_cache: str | os.PathLike | None = None, video_fov: float | None = None,
                   reference_offset: int | None = None, iterations: int = 30, smoothness: float = 1.0,
                   work_short_side: int | None = None, device: str = "cpu", shard: int = 0, num_shards: int = 1,
                   progress: Progress | None = None) -> PrepareReport:
    """Prepare this shard's videos of ``videos_dir`` into ``out_dir`` (see the module docstring).

    Args:
        frames: frames per clip, 4k+1 (17: about a second at 15 fps).
        width, height: sample size in pixels (multiples of 16).
        fps: the clips' frame rate (videos are resampled to it).
        stride: frames between clip starts (None: ``frames``, clips side by side).
        max_clips_per_video: at most this many clips per video, spread over it.
        encoder: an ``ExpressionEncoder``, ``"builtin"`` (anny ARKit-52, needs ``anny_cache``)
            or the path of a learned encoder file (.safetensors).
        anny_model: the loaded anny upper body (else loaded from ``anny_cache``).
        anny_cache: anny's cache folder (ComfyUI's ``models/anny``).
        video_fov: the videos' vertical field of view in degrees when known (None: fitted per clip).
        reference_offset: None: the reference is the frame farthest from the clip; else the
            frame nearest to this many frames before or after it.
        iterations, smoothness: of the body fit (as Track Body Mesh's inputs).
        work_short_side: the working resolution's shorter side (None: ``WORK_SCALE`` times
            the output's larger side).
        device: where normal maps are rendered and a learned encoder runs.
        shard, num_shards: this job's share of the videos (``shard_range``).
        progress: ``progress(videos done, videos, message)``.
    Returns:
        the run's :class:`PrepareReport`.
    """
    start_time = time.perf_counter()
    _check_arguments(frames, width, height, fps, stride, max_clips_per_video, shard, num_shards, video_fov,
                     reference_offset)
    settings = _Settings(frames, width, height, float(fps), stride, max_clips_per_video,
                         None if video_fov is None else float(video_fov), reference_offset, iterations,
                         smoothness, work_short_side or WORK_SCALE * max(width, height), str(device))
    tools = _Tools(encoder, anny_model, anny_cache)
    videos_dir, out_dir = Path(videos_dir), Path(out_dir)
    every = find_videos(videos_dir)
    mine = [every[i] for i in shard_range(len(every), shard, num_shards)]
    manifest = ShardManifest(out_dir, MANIFEST_NAME, shard, num_shards)
    report = PrepareReport(shard, num_shards, videos=mine)
    _check_same_settings(manifest, settings)
    ours = set(mine)
    clip_counts: dict[str, int] = {}  # video -> clips_in_video, from the lines already written
    for entry in manifest.entries:
        key = str(entry["index"])
        video = key if key in ours else key.rsplit("#", 1)[0]
        if video not in ours:
            continue
        if "clips_in_video" in entry:
            clip_counts[video] = int(entry["clips_in_video"])
        if "skipped" in entry:
            report.skipped_before.append(SkippedItem(key, entry["skipped"]))
        else:
            report.done_before += 1
    for done, relative in enumerate(mine):
        if progress is not None:
            progress(done, len(mine), f"video {relative}")
        _prepare_video(videos_dir, out_dir, relative, clip_counts.get(relative), manifest, settings, tools, report,
                       progress, done, len(mine))
    report.seconds = time.perf_counter() - start_time
    if progress is not None:
        progress(len(mine), len(mine), "done")
    return report


def _check_same_settings(manifest: ShardManifest, settings: _Settings) -> None:
    """Refuse to resume a manifest written with another clip length or size."""
    for entry in manifest.entries:
        if "skipped" in entry:
            continue
        had = (entry.get("frames"), entry.get("width"), entry.get("height"))
        if had != (settings.frames, settings.width, settings.height):
            raise ValueError(f"{manifest.path} lists clips of {had[0]} frames at {had[1]}x{had[2]}, not "
                             f"{settings.frames} at {settings.width}x{settings.height}: resume with the same "
                             "settings, or prepare into another output folder")
        return


def _prepare_video(videos_dir: Path, out_dir: Path, relative: str, count: int | None, manifest: ShardManifest,
                   settings: _Settings, tools: _Tools, report: PrepareReport, progress: Progress | None, done: int,
                   total: int) -> None:
    if manifest.is_done(relative):
        return  # skipped as a whole before
    if count is not None:  # the clips are known: adopt unlisted files before decoding anything
        for clip in range(count):
            key = clip_key(relative, clip)
            if not manifest.is_done(key) and manifest.adopt_existing(sample_file(relative, clip), key):
                report.adopted.append(sample_file(relative, clip))
        if all(manifest.is_done(clip_key(relative, c)) for c in range(count)):
            return

    def skip(key: str, reason: str, **extra) -> None:
        manifest.skip(key, reason, **extra)
        report.skipped.append(SkippedItem(key, reason))

    try:
        video = read_video(videos_dir / relative, settings.fps, short_side=settings.work_short_side, as_float=False)
    except VideoReadError as e:
        return skip(relative, f"unreadable: {e.reason}")
    starts = cl.clip_starts(video.num_frames, settings.frames, settings.stride, settings.max_clips)
    if not starts:
        return skip(relative, f"too short: {video.num_frames} frame(s) at {settings.fps:g} fps "
                              f"({video.duration:.2f} s); a clip needs {settings.frames}")
    tools.check_detector()
    boxes = _face_boxes(video)
    if bool(torch.isnan(boxes).any(1).all()):
        return skip(relative, f"no face found in any of its {video.num_frames} frames")
    for clip, start in enumerate(starts):
        key, file = clip_key(relative, clip), sample_file(relative, clip)
        if manifest.is_done(key):
            continue
        if manifest.adopt_existing(file, key):
            report.adopted.append(file)
            continue
        if progress is not None:
            progress(done, total, f"video {relative}: clip {clip + 1} of {len(starts)}")
        began = time.perf_counter()
        try:
            sample = _make_clip(relative, clip, start, video, boxes, settings, tools)
        except (_NoFace, InputError) as e:
            skip(key, f"no usable face: {e}", clips_in_video=len(starts))
            continue
        except Exception as e:  # not the video's fault: stop, naming the clip (a rerun resumes here)
            raise RuntimeError(f"preparing {key} (from frame {start}) failed: {type(e).__name__}: {e}") from e
        sha256, size = write_sample(out_dir / file, sample)
        entry = entry_for(sample, file, sha256, size, key)
        entry.update(video=relative, clip=clip, clips_in_video=len(starts))
        manifest.add(entry)
        report.prepared.append(file)
        report.clip_seconds.append(time.perf_counter() - began)


def _face_boxes(video: Video) -> torch.Tensor:
    """Face boxes ``[F, 4]`` in the video's working pixels (NaN rows: no face): MediaPipe's
    face mesh in tracking mode, a chunk of frames at a time."""
    from ...models.expression.face_mesh import detect_face_arrays

    faces = []
    for f0 in range(0, video.num_frames, DETECT_CHUNK):
        chunk = video.frames[f0:f0 + DETECT_CHUNK].float().div_(255.0)
        faces += detect_face_arrays(chunk, video=True)[0]
    return cl.face_boxes(faces)


class _NoFace(Exception):
    pass


def _make_clip(relative: str, clip: int, start: int, video: Video, boxes: torch.Tensor, settings: _Settings,
               tools: _Tools) -> ClipSample:
    """One clip's sample (see the module docstring, step 3)."""
    from ...models.tracking.body_track import track_body
    from ...models.tracking.mediapipe_detector import detect_landmarks
    from ...models.tracking.rendering import render_track_normals

    n, w, h = settings.frames, settings.width, settings.height
    clip_boxes = boxes[start:start + n]
    with_face = int((~torch.isnan(clip_boxes).any(1)).sum())
    if with_face < MIN_FACE_SHARE * n:
        raise _NoFace(f"a face in only {with_face} of its {n} frames")
    box = cl.crop_for_faces(clip_boxes, video.size, (w, h))
    candidates = cl.box_inside(boxes, box)
    if not bool(candidates.any()):  # the crop had to cut into every face (faces larger than the frame allows)
        candidates = ~torch.isnan(boxes).any(1)
    reference, outside = cl.choose_reference(candidates, start, n, settings.reference_offset)
    images = cl.crop_and_resize(video.frames[start:start + n], box, w, h)
    reference_image = cl.crop_and_resize(video.frames[reference:reference + 1], box, w, h)[0]

    keypoints = detect_landmarks(images, video=True)
    fov = None if settings.video_fov is None else cl.crop_fov(settings.video_fov, box, video.size[1])
    track = track_body(tools.model, keypoints, None, video_fov_deg=fov, iterations=settings.iterations,
                       smoothness=settings.smoothness)
    normals, masks = render_track_normals(track, track.camera, w, h, device=settings.device)
    encoder = tools.encoder
    fit = track.driving.report
    codes, expression_notes = encoder.encode(images, keypoints if encoder.arkit is None else None,
                                             fov_degrees=fit.fov_deg, video=True, device=settings.device)

    sx, sy = video.native_size[0] / video.size[0], video.native_size[1] / video.size[1]
    x, y, cw, ch = box.scaled(sx, sy)
    info = {
        "source": "real", "video": relative, "clip": clip,
        "start_frame": start, "start_time": start / settings.fps, "fps": settings.fps,
        "native_fps": video.native_fps, "native_size": list(video.native_size),
        "source_frames": [video.source_frames[start], video.source_frames[start + n - 1]],
        "crop": {"x": x, "y": y, "width": cw, "height": ch}, "face_frames": with_face,
        "reference_frame": reference, "reference_time": reference / settings.fps,
        "reference_outside_clip": outside,
        "fit": {"error_px": _finite(fit.error_px), "mean_error_px": _finite(fit.mean_error_px),
                "frame_error_px": [_finite(e) for e in fit.frame_error_px], "fov_deg": fit.fov_deg,
                "fov_given": fov is not None, "camera_distance": fit.camera_distance, "seconds": fit.seconds},
        "filled_frames": list(fit.filled_frames),
        "notes": list(video.notes) + list(fit.notes) + list(expression_notes),
        "body_model": tools.model.name, "settings": settings.info(),
    }
    return ClipSample(
        frames=to_uint8_images(images), reference=to_uint8_images(reference_image),
        normal_maps=to_uint8_images(normals.cpu()), expression=codes.codes.detach().float().cpu().contiguous(),
        camera=track.camera, reference_camera=track.camera.frames([0]), expression_encoder=encoder.name,
        mask=(masks.cpu() > 0.5).to(torch.uint8), info=info)


def _finite(value: float) -> float | None:
    """A float for JSON (NaN and infinities become None)."""
    value = float(value)
    return value if math.isfinite(value) else None


__all__ = ["BUILT_IN_ENCODER", "MANIFEST_NAME", "MIN_FACE_SHARE", "VIDEO_SUFFIXES", "PrepareReport", "SkippedItem",
           "clip_key", "find_videos", "prepare_folder", "sample_file", "video_slug"]
