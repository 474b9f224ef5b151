"""Fit the anny upper body to one portrait photo: the pack's landmark fit, then the face
refined on MediaPipe's 478 face-mesh points so that the template's eyes, nose, mouth and
jaw line lie on the photo's.

1. MediaPipe's full-range face detector finds the faces (down to a few dozen pixels in a
   large photo); the largest is used (the notes say so when there were several).
2. The face mesh and pose run on a crop around it (head and shoulders), resized so the
   face fills it: a small face in a large photo is fitted as well as a close-up.
3. ``fit_sequence`` (tracking/fit.py) fits shape, pose, face actions and the focal length to
   the 32 named landmarks of that frame.
4. Refinement: the face-mesh points placed on anny (``expression.face_correspondence``)
   are pulled onto the detected ones (pseudo-Huber reprojection error in face sizes; the
   shoulders' landmarks kept in place), moving head, neck and global pose, translation, the
   face actions the tracker fits and the shape (held near the landmark fit's by a prior).
   Adam, a fixed number of steps, one frame: a second or two.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..body.upper_body import LANDMARK_INDEX, UpperBodyModel, UpperBodyParams
from ..camera.trajectory import CameraTrajectory
from ..errors import InputError
from ..expression.arkit_encoder import CONTOURS
from ..expression.face_correspondence import IRISES, FaceCorrespondence
from ..expression.face_mesh import detect_face_arrays
from ..threads import one_torch_thread
from ..tracking.fit import FITTED_ARKIT, FitReport, fit_sequence
from ..tracking.keypoints import Keypoints2D
from ..tracking.mediapipe_detector import detect_landmarks
from .photo import Photo
from .segmentation import FaceBox, detect_faces

Progress = Callable[[int, int], None]

CROP_FACES = 3.4  # the crop's side in face sizes (head, neck and shoulders)
CROP_DROP = 0.55  # the crop's centre below the face's, in face sizes
CROP_SIDE = (384, 768)  # the crop is resized so its side is in this range
REFINE_STEPS = 120
ROBUST = 0.01  # face sizes: where the refinement's loss turns from quadratic to linear
SHOULDERS = ("shoulder_left", "shoulder_right")
# Priors of the refinement, relative to one face-mesh point's loss.
SHAPE_PRIOR = 2.0
POSE_PRIOR = 5.0


@dataclass
class PhotoFit:
    """The fit of a photo.

    Attributes:
        params: anny parameters of the photo (one frame).
        camera: the photo's camera (one frame, frontal, the DESIGN world).
        keypoints: the 32 named landmarks of the photo (photo pixels).
        face_points: the detected face-mesh points ``[478, 2]`` (photo pixels).
        face: the face box used.
        report: the landmark fit's report.
        face_error_px: RMS distance of the placed face-mesh points from the detected ones,
            before and after the refinement.
        notes: for the user (several faces, a face cut by the edge, the fit's notes).
    """

    params: UpperBodyParams
    camera: CameraTrajectory
    keypoints: Keypoints2D
    face_points: Tensor
    face: FaceBox
    report: FitReport
    face_error_px: tuple[float, float]
    notes: list[str] = field(default_factory=list)


def photo_uint8(photo: Photo) -> np.ndarray:
    return np.ascontiguousarray((photo.rgb.numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8))


def largest_face(photo: Photo, input_name: str = "image") -> tuple[FaceBox, list[str]]:
    """The face to fit and notes about the others; an InputError when there is none."""
    faces = detect_faces(photo_uint8(photo))
    if not faces:
        raise InputError(input_name, "no face found in the photo: the avatar needs a face seen roughly from the "
                                     "front (turned less than about 45 degrees), not covered, not cut off by the "
                                     "photo's edge by more than about a third, and at least about 30 pixels tall; "
                                     "use another photo, or crop it closer around the face.")
    notes = []
    face = faces[0]
    if len(faces) > 1:
        notes.append(f"{len(faces)} faces found: the largest ({face.size:.0f} px, centred at "
                     f"{face.centre[0]:.0f}, {face.centre[1]:.0f}) was used; crop the photo to choose another.")
    cut = max(-face.x0, -face.y0, face.x1 - photo.width, face.y1 - photo.height) / face.size
    if cut > 0.05:
        notes.append(f"the face is cut by the photo's edge ({100 * cut:.0f} % of its size): the missing part is "
                     "filled from the mirrored side or its neighbours.")
    return face, notes


def _crop(photo: Photo, face: FaceBox) -> tuple[Tensor, float, tuple[int, int]]:
    """The head-and-shoulders crop ``[1, h, w, 3]`` resized, its scale (crop px per photo px)
    and its top-left corner in the photo."""
    side = CROP_FACES * face.size
    cx, cy = face.centre[0], face.centre[1] + CROP_DROP * face.size
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    x1, y1 = min(photo.width, int(cx + side / 2) + 1), min(photo.height, int(cy + side / 2) + 1)
    crop = photo.rgb[y0:y1, x0:x1]
    scale = min(max(CROP_SIDE[0] / max(crop.shape[:2]), 1.0), CROP_SIDE[1] / max(crop.shape[:2]))
    if scale != 1.0:
        size = (max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale)))
        crop = torch.nn.functional.interpolate(crop.permute(2, 0, 1)[None], size=size, mode="bilinear",
                                               antialias=scale < 1, align_corners=False)[0].permute(1, 2, 0)
        scale = size[1] / (x1 - x0)  # exact per-axis ratios differ by rounding only
    return crop[None].contiguous(), scale, (x0, y0)


def detect_photo_landmarks(photo: Photo, face: FaceBox, input_name: str = "image") -> tuple[Keypoints2D, Tensor]:
    """The 32 named landmarks and the 478 face-mesh points of the face, in photo pixels."""
    crop, scale, (x0, y0) = _crop(photo, face)
    try:
        keypoints = detect_landmarks(crop, video=False)
        meshes, _several = detect_face_arrays(crop, video=False)
    except InputError as err:
        if err.input_name != "images":
            raise
        raise InputError(input_name, "a face was detected but MediaPipe's face mesh could not follow it (a face "
                                     "turned too far, covered or blurred); use a more frontal, sharper photo.") from err
    if meshes[0] is None:
        raise InputError(input_name, "MediaPipe's face mesh found no face in the crop around the detected face; "
                                     "use a more frontal, sharper photo.")
    offset = torch.tensor([x0, y0], dtype=torch.float32)
    points = keypoints.points / scale + offset
    mesh = torch.from_numpy(meshes[0]).float() / scale + offset
    in_photo = Keypoints2D(points, keypoints.confidence, photo.width, photo.height, notes=list(keypoints.notes))
    return in_photo, mesh


def fit_photo(model: UpperBodyModel, photo: Photo, correspondence: FaceCorrespondence,
              fov_degrees: float | None = None, input_name: str = "image",
              progress: Progress | None = None) -> PhotoFit:
    """Fit ``model`` (anny) to the photo's face and shoulders (see the module docstring).

    Raises:
        InputError: naming ``input_name`` when no face is found or followed.
    """
    face, notes = largest_face(photo, input_name)
    keypoints, mesh = detect_photo_landmarks(photo, face, input_name)
    params, camera, report = fit_sequence(model, keypoints, camera_fov_deg=fov_degrees,
                                          progress=None if progress is None else lambda d, t: progress(50 * d // t, 100))
    with torch.inference_mode(False), torch.enable_grad(), one_torch_thread():
        params, errors = _refine(model, params.map(lambda t: t.clone()), camera, keypoints, mesh.clone(),
                                 correspondence, photo.width, photo.height, progress)
    notes += report.notes
    return PhotoFit(params, camera, keypoints, mesh, face, report, errors, notes)


def _refine(model: UpperBodyModel, params: UpperBodyParams, camera: CameraTrajectory, keypoints: Keypoints2D,
            mesh: Tensor, corr: FaceCorrespondence, width: int, height: int,
            progress: Progress | None) -> tuple[UpperBodyParams, tuple[float, float]]:
    # The correspondence and camera may come from inference mode (ComfyUI): ordinary copies
    # of what the differentiated loss reads.
    corr = FaceCorrespondence(*(t.clone() if isinstance(t, Tensor) else t for t in (
        corr.point_index, corr.face_index, corr.vertex_index, corr.bary, corr.dropped, corr.spread_mm)))
    camera = camera.frames([0])
    camera = CameraTrajectory(camera.w2c.clone(), camera.focal.clone(), camera.pixel_aspect.clone(),
                              camera.principal.clone())
    keep = ~torch.isin(corr.point_index, torch.tensor(IRISES))  # irises follow the gaze only
    index = corr.point_index[keep]
    observed = mesh[index].double()  # [N, 2]
    weight = torch.where(torch.isin(index, torch.tensor(CONTOURS)), 1.0, 0.3).double()
    shoulders = [LANDMARK_INDEX[n] for n in SHOULDERS]
    shoulder_obs = keypoints.points[0, shoulders].double()
    shoulder_conf = keypoints.confidence[0, shoulders].double()
    size = float((observed - observed.mean(0)).square().sum(-1).mean().sqrt())  # the face's size in pixels
    free_face = torch.tensor([n in FITTED_ARKIT for n in model.face_labels])
    start = params.map(lambda t: t.detach().double().clone())
    names = ("rotation", "translation", "head", "neck", "face", "shape")
    p = {k: getattr(start, k).clone().requires_grad_(True) for k in names}
    low, high = model.shape_range if model.shape_range is not None else (None, None)

    def current() -> UpperBodyParams:
        values = {k: p[k] if k in p else getattr(start, k) for k in start.tensors()}
        values["face"] = torch.where(free_face, p["face"], start.face)
        return UpperBodyParams(**values)

    def residuals() -> tuple[Tensor, Tensor]:
        vertices = model(current().map(lambda t: t.to(model.template.dtype)))
        points = corr.gather(vertices)[0, keep].double()  # [N, 3]
        uv = camera.project(points, width, height)[0, :, :2]
        landmarks = model.landmarks(vertices)[0, shoulders].double()
        return uv - observed, camera.project(landmarks, width, height)[0, :, :2] - shoulder_obs

    def loss() -> Tensor:
        face_r, shoulder_r = residuals()
        r = face_r.norm(dim=-1) / size / ROBUST
        data = (weight * ((1 + r.square()).sqrt() - 1)).sum()
        rs = shoulder_r.norm(dim=-1) / size / ROBUST
        data = data + (shoulder_conf * ((1 + rs.square()).sqrt() - 1)).sum()
        prior = SHAPE_PRIOR * (p["shape"] - start.shape).square().sum()
        prior = prior + POSE_PRIOR * sum((p[k] - getattr(start, k)).square().sum() for k in ("rotation", "neck"))
        return data + prior

    with torch.no_grad():
        before = float(residuals()[0].square().sum(-1).mean().sqrt())
    rates = {"rotation": 0.003, "translation": 0.0005, "head": 0.003, "neck": 0.003, "face": 0.02, "shape": 0.02}
    optimiser = torch.optim.Adam([{"params": [p[k]], "lr": rates[k]} for k in names])
    for step in range(REFINE_STEPS):
        optimiser.zero_grad(set_to_none=True)
        loss().backward()
        optimiser.step()
        with torch.no_grad():
            p["face"].clamp_(0, 1)
            if low is not None:
                p["shape"].copy_(torch.maximum(torch.minimum(p["shape"], high.double()), low.double()))
        if progress is not None and (step + 1) % 20 == 0:
            progress(50 + 50 * (step + 1) // REFINE_STEPS, 100)
    with torch.no_grad():
        after = float(residuals()[0].square().sum(-1).mean().sqrt())
        dtype = params.face.dtype
        refined = current().map(lambda t: t.detach().to(dtype).clone())
    return refined, (before, after)
