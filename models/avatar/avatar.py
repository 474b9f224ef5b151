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
from .photo import prepare_photo
from .photo_fit import PhotoFit, fit_photo, photo_uint8
from .segmentation import person_matte
from .surface import SurfaceTexture, mirror_vertices, mouth_cavity, neighbour_mean_matrix, surface_texture

Progress = Callable[[int, int], None]
ANNY = "anny"


@dataclass
class Avatar:
    """Everything needed to render a photo's person under new controls.

    Attributes:
        model: the anny upper body.
        fit: the photo's fit (its params, camera, landmarks and report).
        texture: ``[H, W, 5]`` at the photo's working size: the person's colours, the layer
            matte they are composited with, and the person's own matte (the MASK output).
        background: the photo with the person removed and filled ``[H, W, 3]``.
        plane_depth: depth of the background plane in the photo's camera (metres).
        surface: the template's per-vertex texture data.
        layer: hair, clothing and the rest, tied to the body.
        photo_transforms: the template's joint maps at the photo's pose ``[J, 3, 4]``.
        build_seconds: wall time of :func:`build_avatar`.
        notes: for the user.
    """

    model: UpperBodyModel
    fit: PhotoFit
    texture: Tensor
    background: Tensor
    plane_depth: float
    surface: SurfaceTexture
    layer: Layer
    photo_transforms: Tensor
    build_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def params(self) -> UpperBodyParams:
        """The photo's own pose, shape and expression (one frame)."""
        return self.fit.params

    @property
    def camera(self) -> CameraTrajectory:
        """The photo's camera (one frame)."""
        return self.fit.camera

    @property
    def height(self) -> int:
        return self.texture.shape[0]

    @property
    def width(self) -> int:
        return self.texture.shape[1]

    def summary(self) -> str:
        f = self.fit
        lines = [f"avatar of a {self.width}x{self.height} photo, built in {self.build_seconds:.1f} s.",
                 f"face: {f.face.size:.0f} px; landmark fit error {f.report.error_px:.1f} px; face-mesh points "
                 f"{f.face_error_px[0]:.1f} -> {f.face_error_px[1]:.1f} px after refinement; "
                 f"field of view {f.report.fov_deg:.1f} deg.",
                 f"template: {int((self.surface.seen > 0.5).sum())} of {len(self.surface.seen)} vertices seen in the "
                 f"photo; layer (hair, clothing): {len(self.layer.vertices)} vertices."]
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
    photo = prepare_photo(image, input_name)
    fit = fit_photo(model, photo, correspondence, fov_degrees, input_name, progress=report(0, 70))
    width, height = photo.width, photo.height

    with torch.inference_mode(False), torch.no_grad():
        alpha = photo.alpha if photo.alpha is not None else torch.from_numpy(person_matte(photo_uint8(photo)))
        background, layer_matte = inpaint_background(photo.rgb, alpha)
        texture = torch.cat([person_colours(photo.rgb, layer_matte, background), layer_matte[..., None],
                             alpha[..., None]], -1)
        report(0, 80)(1, 1)

        world = model(fit.params)  # [1, V, 3]
        verts, k = rz.camera_space(world, fit.camera, width, height)
        fragments = rz.rasterize(verts, model.faces, k, width, height)
        mean = neighbour_mean_matrix(model.faces, model.num_vertices)
        rest = model(_neutral_like(model, fit.params))[0]
        cavity, cavity_depth = mouth_cavity(model, fit.params.shape, mean)
        surface = surface_texture(model, fit.params, fit.camera, texture, fragments, mirror_vertices(rest),
                                  cavity, cavity_depth, mean)
        report(0, 90)(1, 1)

        pixel_weights = rz.interpolate(fragments, model.skin_weights.float()[None], model.faces)[0]
        chin = fit.keypoints.points[0, model.landmark_names.index("chin")]
        layer = build_layer(layer_matte, fragments, pixel_weights, fit.camera.c2w[0], k[0], grid_step(width, height),
                            float(chin[1]), fit.face.size, body_joints(model))
        transforms = model.joint_transforms(fit.params)[0]
        w2c = fit.camera.w2c[0]
        head_depth = float((w2c[:3, :3] @ fit.params.translation[0].double() + w2c[:3, 3])[2])
    notes = photo.notes + fit.notes
    avatar = Avatar(model, fit, texture.contiguous(), background.contiguous(), head_depth + BEHIND, surface, layer,
                    transforms, time.perf_counter() - start, notes)
    report(0, 100)(1, 1)
    return avatar


def _neutral_like(model: UpperBodyModel, params: UpperBodyParams) -> UpperBodyParams:
    """Zero pose, neutral face, centred, with the mean shape (symmetric: for the mirror map)."""
    out = model.neutral_params(1)
    return out.map(lambda t: t.to(params.face.dtype))
