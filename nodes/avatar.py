"""Nodes "FactorPortrait Build Avatar" (portrait IMAGE -> FACTORPORTRAIT_AVATAR) and
"FactorPortrait Render Avatar" (avatar + body track, expression, camera -> frames and mask).

Thin adapters over ``models/avatar``: the anny body model and MediaPipe's face mesh on it
(its face correspondence) are loaded once per process, like the tracking and expression
nodes do; errors name the node, the input and the fix.
"""
from __future__ import annotations

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from ..models.avatar.avatar import build_avatar
from ..models.avatar.controls import avatar_controls
from ..models.avatar.render import MAX_SIZE, check_size, render_avatar
from ..models.expression.face_correspondence import FaceCorrespondence, load_face_correspondence
from .body_models import ANNY_CHOICE, anny_cache_folder, load_body_model
from .errors import reported_as
from .progress import comfy_progress
from .types import Avatar, BodyTrack, Camera, Expression
from .ui_previews import animated_preview, clip_preview, with_images

BUILD_NAME = "FactorPortrait Build Avatar"
RENDER_NAME = "FactorPortrait Render Avatar"
CATEGORY = "FactorPortrait/avatar"

_correspondences: dict[str, FaceCorrespondence] = {}


def load_correspondence(model, progress) -> FaceCorrespondence:
    """MediaPipe's face-mesh points on anny, from the anny model folder (built there on
    first use, about half a minute), loaded once per folder."""
    folder = anny_cache_folder()
    if folder not in _correspondences:
        _correspondences[folder] = load_face_correspondence(folder, model, progress)
    return _correspondences[folder]


class BuildAvatar(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitBuildAvatar",
            display_name=BUILD_NAME,
            category=CATEGORY,
            description=(
                "Lifts one portrait photo onto the anny upper body, no weights needed: the body, "
                "head and face fitted to the photo's landmarks and face mesh, the photo mapped onto "
                "that surface (the unseen parts filled from the mirrored side or seen neighbours), "
                "hair and clothing as layers tied to the head and torso, an inner mouth, and the "
                "background filled on a plane behind. Render it with Render Avatar under any "
                "pose, expression and camera."
            ),
            inputs=[
                io.Image.Input("image", tooltip=(
                    "The portrait (first image used): any size and aspect, colour, grayscale or "
                    "with alpha (an alpha channel is used as the person's matte). The largest face "
                    "is used.")),
                io.Float.Input("fov", default=0.0, min=0.0, max=179.0, step=0.5, tooltip=(
                    "Vertical field of view of the photo's camera in degrees; 0 estimates it from "
                    "the landmarks (weakly determined: give it when known; phones ~45-55, portrait "
                    "lenses ~10-25).")),
            ],
            outputs=[
                Avatar.Output(display_name="avatar", tooltip="The avatar, for Render Avatar."),
                Camera.Output(display_name="camera", tooltip=(
                    "The photo's camera (one frame): wire it into Camera Trajectory's "
                    "reference_camera so that camera paths start at the photo's view, or into "
                    "Render Avatar to hold that view.")),
                io.Image.Output(display_name="preview", tooltip=(
                    "The avatar rendered at the photo's own view, pose and expression, at the "
                    "photo's working size: it should give the photo back.")),
                io.String.Output(display_name="info", tooltip=(
                    "Build time, face size, landmark fit errors, field of view, how much of the "
                    "template the photo shows, and notes (several faces, the face at an edge).")),
            ],
        )

    @classmethod
    def execute(cls, image, fov: float) -> io.NodeOutput:
        with reported_as(BUILD_NAME):
            model = load_body_model(ANNY_CHOICE, comfy_progress())
            correspondence = load_correspondence(model, comfy_progress())
            avatar = build_avatar(model, correspondence, image, fov_degrees=fov or None, input_name="image",
                                  progress=comfy_progress())
            preview, _ = render_avatar(avatar, avatar.params, avatar.camera, avatar.width, avatar.height)
        preview = preview.to(mm.intermediate_device())
        return io.NodeOutput(avatar, avatar.camera, preview, avatar.summary(),
                             ui=with_images(animated_preview(preview)))


class RenderAvatar(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitRenderAvatar",
            display_name=RENDER_NAME,
            category=CATEGORY,
            description=(
                "Renders an avatar (Build Avatar) under the controls, no weights needed: the pose "
                "of a body track retargeted onto the photo, ARKit expression codes and a camera. "
                "Each control acts alone and one left out holds the photo's own (its pose, its "
                "expression, its view). The frame count is the longest control's; the others "
                "must have as many frames or one. Frames are made in chunks: memory stays flat "
                "in the number of frames."
            ),
            inputs=[
                Avatar.Input("avatar", tooltip="From FactorPortrait Build Avatar."),
                BodyTrack.Input("body_track", optional=True, tooltip=(
                    "The pose: Track Body Mesh (body_model anny) of the driving video; its motion "
                    "since the first frame is applied to the photo's pose, so frame 0 is the "
                    "photo's pose. Frames without a face hold the last pose seen. Not connected: "
                    "the photo's pose held.")),
                Expression.Input("expression", optional=True, tooltip=(
                    "The expression: ARKit-52 codes (Extract Expression with the built-in encoder, "
                    "Retarget Expression or Expression Keyframes). Not connected: the photo's own.")),
                Camera.Input("camera", optional=True, tooltip=(
                    "The view: Camera Trajectory (with Build Avatar's camera as reference_camera "
                    "to start at the photo's view), Load Camera Trajectory, or Build Avatar's "
                    "camera. A static camera follows any number of frames. Not connected: the "
                    "photo's camera.")),
                io.Int.Input("width", default=512, min=16, max=MAX_SIZE, step=16, tooltip=(
                    "Frame width in pixels (a multiple of 16 for Wan's VAE). The camera's lens is "
                    "resolution-free: a width/height aspect other than the photo's widens or "
                    "narrows the view.")),
                io.Int.Input("height", default=512, min=16, max=MAX_SIZE, step=16, tooltip=(
                    "Frame height in pixels (a multiple of 16 for Wan's VAE).")),
            ],
            outputs=[
                io.Image.Output(display_name="images", tooltip="The frames [frames, height, width, 3]."),
                io.Mask.Output(display_name="mask", tooltip=(
                    "The person (body, hair, clothing) per frame, 1 on the person and 0 on the "
                    "background.")),
                io.String.Output(display_name="info", tooltip=(
                    "Frame count and size, which controls were used, and notes (driving frames "
                    "without a face).")),
            ],
        )

    @classmethod
    def execute(cls, avatar, width: int, height: int, body_track=None, expression=None,
                camera=None) -> io.NodeOutput:
        with reported_as(RENDER_NAME):
            check_size(width, height)
            params, view, notes = avatar_controls(avatar, body_track, expression, camera)
            frames = params.frames
            device = mm.intermediate_device()
            out = (torch.empty(frames, height, width, 3, device=device),
                   torch.empty(frames, height, width, device=device))
            images, masks = render_avatar(avatar, params, view, width, height, progress=comfy_progress(frames),
                                          out=out)
        lines = [f"{frames} frame(s) at {width}x{height}.",
                 "pose: " + (f"body track of {body_track.frames} frame(s), its motion retargeted onto the photo"
                             if body_track is not None else "the photo's, held"),
                 "expression: " + (f"'{expression.encoder}' codes of {expression.num_frames} frame(s)"
                                   if expression is not None else "the photo's own"),
                 "camera: " + _camera_text(camera, view)]
        return io.NodeOutput(images, masks, "\n".join(lines + notes), ui=with_images(clip_preview(images)))


def _camera_text(given, used) -> str:
    if given is None:
        return "the photo's"
    if used.num_frames == 1:
        return "static" if given.num_frames == 1 else f"static ({given.num_frames} identical frames)"
    return f"{used.num_frames} frames"
