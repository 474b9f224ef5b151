"""Face identity for the benchmarks (a development tool, never imported by the pack).

Does the person in a rendered or generated frame look like the person in the reference
photo? dlib's face-recognition pipeline answers with a distance:

1. dlib's HOG frontal face detector (image upsampled once), keeping the largest face;
2. its 5-point shape predictor (eye corners and the base of the nose) to align the face;
3. its ResNet face descriptor: 128 numbers per face, from a 150x150 aligned chip.

Two faces with descriptors closer than ``SAME_PERSON_THRESHOLD`` (0.6, Euclidean) are the
same person by dlib's published rule (99.38% on the LFW benchmark).

The HOG detector only finds roughly frontal faces: faces turned beyond about 30 degrees
(yaw), strongly tilted, very small (under about 40 pixels after the upsampling) or heavily
occluded are missed and give None. A caller must therefore report the fraction of frames
where a face was found next to any distance statistic; a low distance on 20% of the
frames says little about the other 80%.

Requirements (requirements-dev.txt): ``dlib-bin`` and ``face-recognition-models`` (the
``.dat`` models). The models are found by path: ``face_recognition_models`` itself imports
``pkg_resources``, which recent setuptools no longer has, so it is never imported here.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

#: dlib's same-person rule: descriptors closer than this (Euclidean) are the same person.
SAME_PERSON_THRESHOLD = 0.6

_DETECTOR_UPSAMPLE = 1


def models_dir() -> Path:
    """The folder of ``face_recognition_models``' ``.dat`` files (without importing it)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "face_recognition_models is not installed: pip install -r requirements-dev.txt"
        )
    return Path(spec.origin).parent / "models"


@functools.lru_cache(maxsize=1)
def _models():
    import dlib

    folder = models_dir()
    return (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat")),
        dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat")),
    )


def _as_uint8_frames(images: Any) -> np.ndarray:
    """Images as a C-contiguous uint8 array [N, H, W, 3].

    Accepts a torch tensor or numpy array [N, H, W, C] or [H, W, C] (C = 1, 3 or 4; alpha is
    dropped, grey is repeated) or [H, W]; floats are taken as 0..1 (a ComfyUI IMAGE),
    uint8 as 0..255."""
    if hasattr(images, "detach"):  # a torch tensor, without importing torch here
        images = images.detach().cpu().numpy()
    array = np.asarray(images)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected images [N,H,W,C] with C in 1, 3, 4; got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"expected uint8 0..255 or floats 0..1, got {array.dtype}")
        array = np.clip(np.rint(array.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    elif array.shape[-1] == 4:
        array = array[..., :3]
    return np.ascontiguousarray(array)


def face_descriptors(images: Any, num_jitters: int = 0) -> list[np.ndarray | None]:
    """The 128-d dlib face descriptor of the largest face in each image.

    ``images``: RGB, numpy uint8 [N, H, W, 3] (0..255) or a ComfyUI IMAGE (torch float
    [N, H, W, 3], 0..1); a single [H, W, 3] image counts as N = 1, and a grey or RGBA
    channel count is accepted. ``num_jitters`` > 0 averages that many jittered crops
    (slower, slightly steadier).

    Returns a list of N entries: a float64 array [128] (unit-scale descriptor), or None
    where the HOG detector found no face (see the module note: turned faces are missed)."""
    detector, shape_predictor, encoder = _models()
    out: list[np.ndarray | None] = []
    for frame in _as_uint8_frames(images):
        faces = detector(frame, _DETECTOR_UPSAMPLE)
        if len(faces) == 0:
            out.append(None)
            continue
        face = max(faces, key=lambda rect: rect.width() * rect.height())
        shape = shape_predictor(frame, face)
        descriptor = encoder.compute_face_descriptor(frame, shape, num_jitters)
        out.append(np.asarray(descriptor, dtype=np.float64))
    return out


def identity_distances(reference_image: Any, frames: Any) -> tuple[list[float | None], float]:
    """Euclidean distances between the reference photo's face and each frame's face.

    ``reference_image``: one RGB image, [H, W, 3] or [1, H, W, 3] (uint8 or float 0..1 as in
    ``face_descriptors``); ``frames``: [N, H, W, 3] likewise.

    Returns ``(distances, found_fraction)``: ``distances`` has N entries, a float (below
    ``SAME_PERSON_THRESHOLD`` = 0.6 means the same person by dlib's rule) or None where no
    face was found in that frame; ``found_fraction`` is the share of frames with a face
    (0.0 for N = 0). Report it with any statistic of the distances: the detector misses
    faces turned beyond ~30 degrees. Raises ValueError when the reference has no face."""
    reference = _as_uint8_frames(reference_image)
    if reference.shape[0] != 1:
        raise ValueError(f"expected one reference image, got {reference.shape[0]}")
    (ref_descriptor,) = face_descriptors(reference)
    if ref_descriptor is None:
        raise ValueError("no face found in the reference image")
    distances: list[float | None] = [
        None if d is None else float(np.linalg.norm(d - ref_descriptor)) for d in face_descriptors(frames)
    ]
    found = sum(d is not None for d in distances)
    return distances, (found / len(distances) if distances else 0.0)
