"""The single-photo avatar: the value of ``FACTORPORTRAIT_AVATAR``, and how it is built.

``build_avatar(model, correspondence, image)`` fits the anny upper body to the photo
(``photo_fit.py``), separates the person from the background (MediaPipe's selfie
segmentation, or the photo's alpha), fills the background (``background.py``), works out
what each template vertex shows (``surface.py``) and lifts the rest of the person into a
layer tied to the body (``layers.py``). Everything per avatar is computed here, once;
``render.py`` only poses, rasterizes and looks colours up.

Colours are looked up in the photo itself at render time (per pixel, where the photo's
camera sees each surface point), so rendered at the photo's own camera, pose and
expression the avatar gives the photo back.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from ..body.upper_body import UpperBodyModel, UpperBodyParams
from ..camera.trajectory import CameraTrajectory
from ..errors import InputError
from ..expression.face_correspondence import FaceCorrespondence
from ..render import rasterize as rz
from .background import BEHIND, inpaint_background, person_colours
from .layers import Layer, body_joints, build_layer, grid_step
from .photo import Photo, prepare_photo
from .photo_fit import PhotoFit, fit_photo, photo_uint8
from .segmentation import person_matte
from .surface import SurfaceTexture, mirror_vertices, mouth_cavity, neighbour_mean_matrix, surface_texture

Progress = Callable[[int, int], None]
ANNY = "anny"
CUT_OUT_GREY = 0.5  # the background behind a cut-out portrait (a photo with alpha)
# The landmarks of the face (nose, eyes, brows; the chin) whose extent gives its size in the photo.
FACE_LANDMARKS = (*range(21), 27)


@dataclass
class Avatar:
    """Everything needed to render a photo's person under new controls.

    Attributes:
        model: the anny upper body.
        params: the photo's own pose, shape and expression (one frame).
        camera: the photo's camera (one frame).
        texture: ``[H, W, 5]`` at the photo's working size: the person's colours, the layer
            matte they are composited with, and the person's own matte (the MASK output).
        background: the photo with the person removed and filled ``[H, W, 3]``.
        plane_depth: depth of the background plane in the photo's camera (metres).
        surface: the template's per-vertex texture data.
        layer: hair, clothing and the rest, tied to the body.
        photo_transforms: the template's joint maps at the photo's pose ``[J, 3, 4]``.
        fit: the photo fit's landmarks and report (None for an avatar of a known pose).
        build_seconds: wall time of :func:`build_avatar`.
        notes: for the user.
    """

    model: UpperBodyModel
    params: UpperBodyParams
    camera: CameraTrajectory
    texture: Tensor
    background: Tensor
    plane_depth: float
    surface: SurfaceTexture
    layer: Layer
    photo_transforms: Tensor
    fit: PhotoFit | None = None
    build_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return self.texture.shape[0]

    @property
    def width(self) -> int:
        return self.texture.shape[1]

    def summary(self) -> str:
        lines = [f"avatar of a {self.width}x{self.height} photo, built in {self.build_seconds:.1f} s."]
        f = self.fit
        if f is not None:
            lines.append(f"face: {f.face.size:.0f} px; landmark fit error {f.report.error_px:.1f} px; face-mesh "
                         f"points {f.face_error_px[0]:.1f} -> {f.face_error_px[1]:.1f} px after refinement; "
                         f"field of view {f.report.fov_deg:.1f} deg.")
        lines.append(f"template: {int((self.surface.seen > 0.5).sum())} of {len(self.surface.seen)} vertices seen in "
                     f"the photo; layer (hair, clothing): {len(self.layer.vertices)} vertices.")
        return "\n".join(lines + self.notes)


def build_avatar(model: UpperBodyModel, correspondence: FaceCorrespondence, image: Tensor,
                 fov_degrees: float | None = None, input_name: str = "image",
                 progress: Progress | None = None) -> Avatar:
    """Build the avatar of the portrait in ``image`` (ComfyUI IMAGE, the first image used).

    Args:
        model: the anny upper body (``load_anny``); SMPL-X is not supported (no texture fill).
        correspondence: MediaPipe's face mesh on anny (``load_face_correspondence``).
        image: ``[B, H, W, C]`` float 0..1, C = 1 to 4.
        fov_degrees: the photo's vertical field of view; None fits it.
        progress: ``(done, 100)``; may raise to cancel.
    Raises:
        InputError: naming ``input_name`` (no face, bad tensor) or ``body_model``.
    """
    if getattr(model, "name", ANNY) != ANNY:
        raise InputError("body_model", f"the avatar needs the anny body model (it textures anny's surface), got "
                                       f"{model.name}.")
    start = time.perf_counter()

    def report(lo: int, hi: int) -> Progress:
        return lambda done, total: progress(lo + (hi - lo) * done // max(total, 1), 100) if progress else None
    # ComfyUI runs nodes under inference mode; the photo fit optimises, so the avatar's
    # tensors are made outside it (they are ordinary tensors whoever calls).
    with torch.inference_mode(False):
        photo = prepare_photo(image.clone(), input_name)
        fit = fit_photo(model, photo, correspondence, fov_degrees, input_name, progress=report(0, 70))
        matte = photo.alpha if photo.alpha is not None else torch.from_numpy(person_matte(photo_uint8(photo)))
        avatar = avatar_from_fit(model, photo, fit.params, fit.camera, matte, fit, cut_out=photo.alpha is not None)
    avatar.build_seconds = time.perf_counter() - start
    report(0, 100)(1, 1)
    return avatar


def avatar_from_fit(model: UpperBodyModel, photo: Photo, params: UpperBodyParams, camera: CameraTrajectory,
                    matte: Tensor, fit: PhotoFit | None = None, cut_out: bool = False) -> Avatar:
    """The avatar of a photo whose pose, shape, expression (``params``, one frame) and camera
    are known: from :func:`fit_photo`, or the ground truth of a synthetic render (tests).

    Args:
        matte: the person's matte ``[H, W]`` in 0..1 at the photo's working size.
        cut_out: the matte is the photo's own alpha: its colours under the transparent parts
            are no background (a cut-out portrait), so the background is a flat grey
            (``CUT_OUT_GREY``) and the person's colours are taken as they are.
    """
    width, height = photo.width, photo.height
    with torch.inference_mode(False), torch.no_grad():
        if cut_out:
            background, layer_matte = torch.full_like(photo.rgb, CUT_OUT_GREY), matte
            colours = photo.rgb
        else:
            background, layer_matte = inpaint_background(photo.rgb, matte)
            colours = person_colours(photo.rgb, layer_matte, background)
        texture = torch.cat([colours, layer_matte[..., None], matte[..., None]], -1)
        world = model(params)  # [1, V, 3]
        verts, k = rz.camera_space(world, camera, width, height)
        fragments = rz.rasterize(verts, model.faces, k, width, height)
        mean = neighbour_mean_matrix(model.faces, model.num_vertices)
        rest = model(model.neutral_params(1))[0]  # mean shape, zero pose: symmetric
        cavity, cavity_depth = mouth_cavity(model, params.shape, mean)
        surface = surface_texture(model, params, camera, texture, fragments, mirror_vertices(rest),
                                  cavity, cavity_depth, mean)
        pixel_weights = rz.interpolate(fragments, model.skin_weights.float()[None], model.faces)[0]
        face = camera.project(model.landmarks(world)[0, list(FACE_LANDMARKS)].double(), width, height)[0, :, :2]
        chin = face[FACE_LANDMARKS.index(model.landmark_names.index("chin"))]
        face_size = float((face.max(0).values - face.min(0).values).max())
        layer = build_layer(matte, fragments, pixel_weights, camera.c2w[0], k[0], grid_step(width, height),
                            float(chin[1]), face_size, body_joints(model))
        transforms = model.joint_transforms(params)[0]
        w2c = camera.w2c[0]
        head_depth = float((w2c[:3, :3] @ params.translation[0].double() + w2c[:3, 3])[2])
    notes = photo.notes + (fit.notes if fit is not None else [])
    return Avatar(model, params, camera, texture.contiguous(), background.contiguous(), head_depth + BEHIND, surface,
                  layer, transforms, fit, 0.0, notes)
