"""Reading a video file into frames at a fixed frame rate (PyAV, no ffmpeg binary needed).

``read_video(path, fps=15)`` decodes the first video stream and resamples it in time to
``fps`` by nearest timestamp: output frame ``k`` shows the decoded frame whose presentation
time is nearest to ``k / fps`` after the first frame, for every ``k`` with ``k / fps`` before
the end of the last frame. So a 30 fps video keeps every other frame, a variable-frame-rate
phone video is put on a regular grid, and a video slower than ``fps`` repeats frames (said in
``notes``: such clips show less motion per frame than the paper's 15 fps clips).

The display rotation of phone videos (the stream's display matrix) is applied, so faces come
out upright; non-square pixels are not corrected.

Memory: frames are held as uint8 (``as_float=False``, what ``prepare`` uses) or float32,
``F * H * W * 3`` bytes (4x that as float), so long or large videos are read with
``short_side`` (downscaled while decoding) and ``max_frames``.

Any file that cannot be opened or has no decodable video raises :class:`VideoReadError`
(the preparation records it as a skipped item). A stream that fails part way keeps the
frames decoded before the failure, with a note.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

DEFAULT_FPS = 15.0  # the paper's clips


class VideoReadError(ValueError):
    """A video file that cannot be read; the message names the file and why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"video {path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass
class Video:
    """Frames of one video resampled to ``fps``.

    Attributes:
        frames: ``[F, H, W, 3]`` RGB, float32 in 0..1 (a ComfyUI IMAGE) or uint8.
        fps: the frame rate of ``frames`` (the requested one).
        native_fps: the file's average frame rate (from its stream, else its timestamps).
        native_size: ``(width, height)`` of the decoded, upright frames before any downscale.
        source_frames: for every output frame, the index of the decoded frame it shows.
        notes: remarks (frames repeated, decoding stopped early, rotation applied).
    """

    frames: Tensor
    fps: float
    native_fps: float
    native_size: tuple[int, int]
    source_frames: list[int]
    notes: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of ``frames``."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    @property
    def duration(self) -> float:
        """Seconds covered by ``frames``."""
        return self.num_frames / self.fps


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """``(width, height)`` downscaled (never up) so the shorter side is at most ``short_side``;
    even sizes are kept even where the scale allows."""
    if short_side is None or min(width, height) <= short_side:
        return width, height
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _rotation_turns(frame) -> int:
    """Counter-clockwise quarter turns that make the frame upright (its display matrix)."""
    try:
        angle = frame.rotation  # degrees counter-clockwise, PyAV >= 13
    except (AttributeError, ValueError):
        return 0
    return int(round((angle or 0) / 90.0)) % 4


def read_video(path: str | os.PathLike, fps: float = DEFAULT_FPS, *, short_side: int | None = None,
               max_frames: int | None = None, as_float: bool = True) -> Video:
    """Decode ``path`` and resample it to ``fps`` (see the module docstring).

    Args:
        path: a video file PyAV (FFmpeg) can read: mp4, mov, mkv, webm, avi, ...
        fps: the output frame rate.
        short_side: downscale while decoding so the shorter side is at most this (None: keep).
        max_frames: stop after this many output frames (None: the whole video).
        as_float: float32 frames in 0..1 (a ComfyUI IMAGE); False: uint8 (a quarter of the memory).
    Raises:
        VideoReadError: the file is missing, not a video, has no video stream, or no frame decodes.
    """
    import av

    if not fps or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if short_side is not None and short_side < 1:
        raise ValueError(f"short_side must be positive, got {short_side!r}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be positive, got {max_frames!r}")
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(path, "no such file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as e:
        raise VideoReadError(path, f"cannot be opened as a video ({_why(e)})") from None
    notes: list[str] = []
    with container:
        if not container.streams.video:
            raise VideoReadError(path, "has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        native_fps = float(rate) if rate else 0.0
        pending: _Resampler | None = None
        decoded = 0
        native = None
        try:
            for frame in container.decode(stream):
                if pending is None:
                    turns = _rotation_turns(frame)
                    native = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
                    size = scaled_size(*native, short_side)
                    pending = _Resampler(fps, max_frames, lambda f, size=size, turns=turns: _rgb(f, size, turns))
                    if turns:
                        notes.append(f"display rotation of {90 * turns}° counter-clockwise applied.")
                t = frame.time
                pending.push(decoded / (native_fps or fps) if t is None else float(t), decoded, frame)
                decoded += 1
                if pending.full:
                    break
        except (av.FFmpegError, OSError, ValueError) as e:
            if decoded == 0:
                raise VideoReadError(path, f"no frame could be decoded ({_why(e)})") from None
            notes.append(f"decoding stopped after {decoded} frame(s) ({_why(e)}); "
                         "the frames before were kept.")
        if pending is None:
            raise VideoReadError(path, "has no decodable frame")
        # The last frame lasts as long as the frames before it did (or 1 / the stream's rate).
        frame_duration = pending.mean_step() if pending.count > 1 else 1.0 / (native_fps or fps)
        images, sources = pending.finish(frame_duration)
    if not native_fps:
        native_fps = 1.0 / frame_duration if frame_duration else fps
    if native_fps < fps * 0.99:
        notes.append(f"the video has {native_fps:.3g} fps, fewer than {fps:g}: frames are repeated.")
    stacked = torch.from_numpy(np.stack(images))
    frames = stacked.float().div_(255.0) if as_float else stacked
    return Video(frames, float(fps), native_fps, native, sources, notes)


def _why(error: Exception) -> str:
    """An FFmpeg error in words, without the file name (the caller names the file)."""
    return f"{type(error).__name__}: {getattr(error, 'strerror', None) or error}"


def _rgb(frame, size: tuple[int, int], turns: int) -> np.ndarray:
    """One decoded frame as upright uint8 RGB ``[H, W, 3]`` of ``size`` (width, height)."""
    width, height = size
    if turns % 2:  # the decoded frame is rotated by a quarter turn: scale it before turning
        width, height = height, width
    if (width, height) != (frame.width, frame.height):
        frame = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
    rgb = frame.to_ndarray(format="rgb24")
    if turns:
        rgb = np.rot90(rgb, turns)
    return np.ascontiguousarray(rgb)


class _Resampler:
    """Nearest-timestamp resampling while decoding.

    Holds the previous decoded frame (undecoded to RGB) and, when the next one arrives,
    emits it for every output time before the midpoint of their timestamps; a frame is
    converted to RGB only when it is emitted (a 60 fps video converts a quarter of its frames).
    """

    def __init__(self, fps: float, max_frames: int | None, convert):
        self.step = 1.0 / fps
        self.max_frames = max_frames
        self.convert = convert
        self.start: float | None = None
        self.prev = None  # (time, index, frame)
        self.images: list[np.ndarray] = []
        self.sources: list[int] = []
        self.first_time = self.last_time = None
        self.count = 0

    @property
    def full(self) -> bool:
        return self.max_frames is not None and len(self.images) >= self.max_frames

    def _emit_until(self, boundary: float) -> None:
        """Emit the previous frame for every output time before ``boundary``."""
        rgb = None
        while not self.full and self.start + len(self.images) * self.step < boundary - 1e-9:
            rgb = self.convert(self.prev[2]) if rgb is None else rgb
            self.images.append(rgb)
            self.sources.append(self.prev[1])

    def push(self, t: float, index: int, frame) -> None:
        if self.start is None:
            self.start = self.first_time = t
        if self.prev is not None:
            if t <= self.prev[0]:  # out-of-order or repeated timestamp: keep the first
                return
            self._emit_until((self.prev[0] + t) / 2)
        self.prev = (t, index, frame)
        self.last_time = t
        self.count += 1

    def mean_step(self) -> float:
        if self.count < 2:
            return self.step
        return (self.last_time - self.first_time) / (self.count - 1)

    def finish(self, frame_duration: float) -> tuple[list[np.ndarray], list[int]]:
        if self.prev is not None:
            self._emit_until(self.prev[0] + frame_duration)
        return self.images, self.sources
