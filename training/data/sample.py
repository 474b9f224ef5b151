"""One training clip and its file format (``factorportrait-sample``, version 1).

A sample is one safetensors file; tensors:

    frames              uint8   [F, H, W, 3]   the video (RGB), F = 4k + 1
    reference           uint8   [H, W, 3]      the same identity from another frame, camera
                                               and expression
    normal_maps         uint8   [F, H, W, 3]   camera-space normals, DESIGN encoding
                                               (R +x right, G +y up, B +z toward the viewer,
                                               (n + 1) / 2, background (0.5, 0.5, 1.0))
    mask                uint8   [F, H, W]      optional: 1 on the body
    expression          float32 [F, D]         the driving codes the model is trained on
    measured_expression float32 [F, D']        optional: e.g. the built-in ARKit encoder's
                                               codes measured on the frames (synthetic clips)

and one metadata entry ``factorportrait_sample`` (JSON) holding ``format``, ``version``,
``camera`` and ``reference_camera`` (``factorportrait-camera`` trajectories, F frames and
1 frame), ``expression_encoder`` (the name of the codes' encoder) and ``info`` (free-form:
source, regime, identity, seed, index, fps...). Images are uint8 as video frames and PNGs
are; they become ComfyUI IMAGE floats with :func:`to_float_images`.

Files are written atomically (a temporary file in the same folder, then ``os.replace``),
so an interrupted run leaves either the whole sample or nothing under the sample's name.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ...models.camera.trajectory import CameraTrajectory
from ...models.camera.files import trajectory_from_json, trajectory_to_dict
from ...models.errors import InputError
from ...models.wan.latent_frames import TEMPORAL_STRIDE

FORMAT = "factorportrait-sample"
VERSION = 1
METADATA_KEY = "factorportrait_sample"
SUFFIX = ".safetensors"
_IMAGE_KEYS = ("frames", "normal_maps")
_OPTIONAL_KEYS = ("mask", "measured_expression")


class SampleError(ValueError):
    """A sample file that cannot be used; the message names the file and what is wrong."""

    def __init__(self, path: str | os.PathLike, message: str):
        super().__init__(f"sample {path}: {message}")
        self.path = str(path)
        self.message = message


@dataclass
class ClipSample:
    """One training clip (shapes in the module docstring)."""

    frames: torch.Tensor
    reference: torch.Tensor
    normal_maps: torch.Tensor
    expression: torch.Tensor
    camera: CameraTrajectory
    reference_camera: CameraTrajectory | None = None
    expression_encoder: str = "anny-arkit52"
    mask: torch.Tensor | None = None
    measured_expression: torch.Tensor | None = None
    info: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    @property
    def expression_dim(self) -> int:
        return int(self.expression.shape[1])

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"frames": self.frames, "reference": self.reference, "normal_maps": self.normal_maps,
               "expression": self.expression}
        out.update({k: getattr(self, k) for k in _OPTIONAL_KEYS if getattr(self, k) is not None})
        return out

    def metadata(self) -> dict:
        return {"format": FORMAT, "version": VERSION,
                "camera": trajectory_to_dict(self.camera),
                "reference_camera": None if self.reference_camera is None else trajectory_to_dict(self.reference_camera),
                "expression_encoder": self.expression_encoder, "info": self.info}


def to_uint8_images(images: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE floats in 0..1 (any shape) -> uint8, rounded."""
    return (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def to_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in 0..1 (a ComfyUI IMAGE)."""
    return images.float() / 255.0


def validate(sample: ClipSample, where: str | os.PathLike = "<in memory>") -> None:
    """Raise :class:`SampleError` unless every tensor has the documented dtype and shape."""
    def fail(message: str):
        raise SampleError(where, message)

    frames = sample.frames
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        fail(f"'frames' must be uint8 [F, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    f, h, w, _ = frames.shape
    if f < 1 or (f - 1) % TEMPORAL_STRIDE:
        fail(f"'frames' has {f} frames; Wan needs 4k+1 (5, 9, 13, 17, ...)")
    expect = {"normal_maps": (torch.uint8, (f, h, w, 3)), "reference": (torch.uint8, (h, w, 3)),
              "mask": (torch.uint8, (f, h, w))}
    for key, (dtype, shape) in expect.items():
        t = getattr(sample, key)
        if t is None and key == "mask":
            continue
        if t.dtype != dtype or tuple(t.shape) != shape:
            fail(f"'{key}' must be {dtype} {list(shape)} to match 'frames', got {t.dtype} {list(t.shape)}")
    for key in ("expression", "measured_expression"):
        t = getattr(sample, key)
        if t is None and key == "measured_expression":
            continue
        if t.dtype != torch.float32 or t.ndim != 2 or t.shape[0] != f:
            fail(f"'{key}' must be float32 [{f}, D], got {t.dtype} {list(t.shape)}")
        if not torch.isfinite(t).all():
            fail(f"'{key}' holds NaN or infinite values")
    if sample.camera.num_frames != f:
        fail(f"the camera has {sample.camera.num_frames} frames, the clip {f}")
    if sample.reference_camera is not None and sample.reference_camera.num_frames != 1:
        fail(f"the reference camera must have 1 frame, got {sample.reference_camera.num_frames}")


def encode_sample(sample: ClipSample) -> bytes:
    """The sample file's bytes (validated first)."""
    validate(sample)
    tensors = {k: v.detach().contiguous().cpu() for k, v in sample.tensors().items()}
    return save(tensors, metadata={METADATA_KEY: json.dumps(sample.metadata())})


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` never holds a partial file: a temporary
    file in the same folder, flushed to disk, then renamed over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_sample(path: str | os.PathLike, sample: ClipSample) -> tuple[str, int]:
    """Write ``sample`` atomically; returns its sha256 (hex) and size in bytes."""
    data = encode_sample(sample)
    write_atomic(path, data)
    return hashlib.sha256(data).hexdigest(), len(data)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_metadata(path: str | os.PathLike) -> dict:
    """The sample's JSON metadata (header only); :class:`SampleError` for other files."""
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError) as e:
        raise SampleError(path, f"is truncated or corrupt and cannot be read ({e}); delete it "
                                "and rerun the generator or preparation, which resumes") from None
    return _parse_metadata(path, raw)


def _parse_metadata(path, raw: str | None) -> dict:
    if raw is None:
        raise SampleError(path, f"has no '{METADATA_KEY}' metadata: not a FactorPortrait sample")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise SampleError(path, f"its '{METADATA_KEY}' metadata is not JSON") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise SampleError(path, f"is format {meta.get('format')!r} version {meta.get('version')!r}; "
                                f"this pack reads {FORMAT!r} version {VERSION}")
    return meta


def read_sample(path: str | os.PathLike) -> ClipSample:
    """Read and validate a sample file; :class:`SampleError` names the file and the problem."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = _parse_metadata(path, (f.metadata() or {}).get(METADATA_KEY))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, RuntimeError) as e:
        raise SampleError(path, f"is truncated or corrupt and cannot be read ({e}); delete it "
                                "and rerun the generator or preparation, which resumes") from None
    missing = [k for k in ("frames", "reference", "normal_maps", "expression") if k not in tensors]
    if missing:
        raise SampleError(path, f"lacks the tensors {missing}")
    try:
        camera = trajectory_from_json(json.dumps(meta["camera"]), "camera", "the sample's camera")
        ref_cam = meta.get("reference_camera")
        ref_cam = None if ref_cam is None else trajectory_from_json(json.dumps(ref_cam), "reference_camera",
                                                                    "the sample's reference camera")
    except (InputError, KeyError, TypeError) as e:
        raise SampleError(path, f"has an invalid camera ({e})") from None
    sample = ClipSample(frames=tensors["frames"], reference=tensors["reference"],
                        normal_maps=tensors["normal_maps"], expression=tensors["expression"], camera=camera,
                        reference_camera=ref_cam, expression_encoder=str(meta.get("expression_encoder")),
                        mask=tensors.get("mask"), measured_expression=tensors.get("measured_expression"),
                        info=dict(meta.get("info") or {}))
    validate(sample, path)
    return sample


def read_camera_and_expression(path: str | os.PathLike) -> tuple[CameraTrajectory, torch.Tensor]:
    """Only the camera and the expression codes ``[F, D]`` of a sample (what training on
    cached latents needs), without reading its images."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = _parse_metadata(path, (f.metadata() or {}).get(METADATA_KEY))
            expression = f.get_tensor("expression")
    except (SafetensorError, OSError, RuntimeError) as e:
        raise SampleError(path, f"is truncated or corrupt and cannot be read ({e}); delete it "
                                "and rerun the generator or preparation, which resumes") from None
    try:
        camera = trajectory_from_json(json.dumps(meta["camera"]), "camera", "the sample's camera")
    except (InputError, KeyError, TypeError) as e:
        raise SampleError(path, f"has an invalid camera ({e})") from None
    if expression.dtype != torch.float32 or expression.ndim != 2 or expression.shape[0] != camera.num_frames:
        raise SampleError(path, f"'expression' must be float32 [{camera.num_frames}, D], got "
                                f"{expression.dtype} {list(expression.shape)}")
    return camera, expression

