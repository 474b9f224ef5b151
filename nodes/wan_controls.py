"""Nodes "FactorPortrait Wan Controls" (body track / avatar + camera -> pose, depth and mask
videos) and "FactorPortrait Face Video" (driving frames + their body track -> face crops), the
inputs of Wan 2.2 Animate, Wan 2.1 VACE and Fun Control.

Thin adapters over ``models/wan_controls``; the anny model's face points are placed once per
process (one MediaPipe detection on a render of anny, under a second).
"""
from __future__ import annotations

import comfy.model_management as mm
from comfy_api.latest import io

from ..models.avatar.controls import avatar_controls
from ..models.avatar.render import MAX_SIZE, check_size
from ..models.body.anny_model import AnnyUpperBody
from ..models.errors import InputError
from ..models.wan_controls.controls import render_controls, track_controls
from ..models.wan_controls.face68 import SurfacePoints, face68_on_anny
from ..models.wan_controls.face_crops import CROP_SIZE, SCALE, crop_faces, driving_face_points, face_boxes, smooth_boxes
from ..models.wan_controls.pose_drawing import STYLES
from .avatar import load_correspondence
from .errors import reported_as
from .progress import comfy_progress
from .types import Avatar, BodyTrack, Camera, Expression
from .ui_previews import clip_preview, with_images

CONTROLS_NAME = "FactorPortrait Wan Controls"
FACE_NAME = "FactorPortrait Face Video"
CATEGORY = "FactorPortrait/wan"

# The face points per loaded anny model (kept with the model: an id alone could be reused).
_face_points: dict[int, tuple[AnnyUpperBody, SurfacePoints]] = {}


def _face68(model) -> SurfacePoints | None:
    """The iBUG face points on ``model`` (anny only; None for other body models)."""
    if not isinstance(model, AnnyUpperBody):
        return None
    cached = _face_points.get(id(model))
    if cached is None or cached[0] is not model:
        cached = _face_points[id(model)] = (model, face68_on_anny(model, load_correspondence(model, comfy_progress())))
    return cached[1]


class WanControls(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitWanControls",
            display_name=CONTROLS_NAME,
            category=CATEGORY,
            description=(
                "Renders the control videos the Wan models you have were trained on, from the tracked "
                "3-D body instead of a 2-D preprocessor, at any camera: an OpenPose/DWPose skeleton "
                "(Wan 2.2 Animate's pose_video, VACE's control_video), a depth video (near bright, as "
                "MiDaS / Depth Anything draw it: VACE, Fun Control) and the person's mask (Wan Animate's "
                "character_mask, VACE's control_masks). With an avatar, the pose is the driving motion "
                "retargeted onto the photo (as Render Avatar renders it) and the depth includes its "
                "hair, clothing and background."
            ),
            inputs=[
                BodyTrack.Input("body_track", optional=True, tooltip=(
                    "The motion: Track Body Mesh of the driving video (with the reference image and "
                    "retarget on, the motion is on the reference's body). Needed unless an avatar is "
                    "connected, which then takes the track's motion as Render Avatar does.")),
                Avatar.Input("avatar", optional=True, tooltip=(
                    "From Build Avatar: the skeleton and depth of the avatar as Render Avatar renders "
                    "it with the same controls, so they line up with its frames and with the photo.")),
                Expression.Input("expression", optional=True, tooltip=(
                    "ARKit-52 codes (Extract Expression, built-in encoder) for the face points; not "
                    "connected: the track's own face (or the photo's, with an avatar).")),
                Camera.Input("camera", optional=True, tooltip=(
                    "The view: Camera Trajectory (with Build Avatar's camera as reference_camera to "
                    "start at the photo's view). Not connected: the track's camera (the reference "
                    "image's, when retargeted), or the photo's with an avatar.")),
                io.Int.Input("width", default=832, min=16, max=MAX_SIZE, step=16, tooltip=(
                    "Frame width (Wan: a multiple of 16; 832x480 or 480x832 for the 480p models).")),
                io.Int.Input("height", default=480, min=16, max=MAX_SIZE, step=16, tooltip="Frame height."),
                io.Combo.Input("pose_style", options=list(STYLES), default=STYLES[0], tooltip=(
                    "wan_animate: as Wan 2.2 Animate's preprocessing draws its pose video; dwpose: as "
                    "VACE's DWPose annotator draws it: body and face points, in the channel order of "
                    "VACE's videos.")),
            ],
            outputs=[
                io.Image.Output(display_name="pose_video", tooltip="The skeleton on black [frames, H, W, 3]."),
                io.Image.Output(display_name="depth_video", tooltip=(
                    "Inverse depth, near bright, stretched over the clip; black where nothing is.")),
                io.Mask.Output(display_name="mask", tooltip="The person: 1 on the body (and the avatar's layer)."),
                io.String.Output(display_name="info", tooltip="Frames, size, sources and notes."),
            ],
        )

    @classmethod
    def execute(cls, width: int, height: int, pose_style: str, body_track=None, avatar=None, expression=None,
                camera=None) -> io.NodeOutput:
        with reported_as(CONTROLS_NAME):
            check_size(width, height)
            notes = []
            if avatar is not None:
                params, view, notes = avatar_controls(avatar, body_track, expression, camera)
                model = avatar.model
            elif body_track is not None:
                params, view = track_controls(body_track, expression, camera)
                model = body_track.model
            else:
                raise InputError("body_track", "connect a body track (Track Body Mesh of the driving video) or an "
                                               "avatar (Build Avatar): there is nothing to render.")
            face68 = _face68(model)
            videos = render_controls(model, params, view, width, height, face68=face68, avatar=avatar,
                                     style=pose_style, progress=comfy_progress(params.frames))
        device = mm.intermediate_device()
        lines = [f"{params.frames} frame(s) at {width}x{height}, pose style {pose_style}.",
                 "source: " + ("the avatar" + (" driven by the body track" if body_track is not None else "")
                               if avatar is not None else f"the body track ({model.name})"),
                 "camera: " + ("given" if camera is not None else "the track's" if avatar is None else "the photo's")]
        if face68 is None:
            lines.append(f"no face points: the {model.name} body model has none (use anny).")
        return io.NodeOutput(videos.pose.to(device), videos.depth.to(device), videos.mask.to(device),
                             "\n".join(lines + notes), ui=with_images(clip_preview(videos.pose)))


class FaceVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitFaceVideo",
            display_name=FACE_NAME,
            category=CATEGORY,
            description=(
                "Crops the driving video's face for Wan 2.2 Animate's face_video, framed as its "
                "preprocessing frames it (the 68 face points' box grown 1.3x in area, more above than "
                "below, resized to 512x512), but from the tracked face: steady in time, in every frame, "
                "and padded with black at the frame's edge instead of cut."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The driving video frames the body track was made from."),
                BodyTrack.Input("body_track", tooltip="Track Body Mesh (body_model anny) of these frames."),
                io.Int.Input("size", default=CROP_SIZE, min=64, max=2048, step=16, tooltip=(
                    "Crop size in pixels (Wan-Animate's face encoder reads 512x512).")),
                io.Float.Input("scale", default=SCALE, min=1.0, max=4.0, step=0.05, tooltip=(
                    "Area growth of the face points' box (Wan-Animate: 1.3).")),
                io.Float.Input("smoothing", default=0.0, min=0.0, max=20.0, step=0.5, tooltip=(
                    (
                    "Extra temporal smoothing of the crop box, in frames (Gaussian sigma): the tracked face "
                    "is already smooth, so 0 (none) keeps the face centred even in fast turns; raise it "
                    "for a shaky track."))),
            ],
            outputs=[
                io.Image.Output(display_name="face_video", tooltip="Face crops [frames, size, size, 3]."),
            ],
        )

    @classmethod
    def execute(cls, images, body_track, size: int, scale: float, smoothing: float) -> io.NodeOutput:
        with reported_as(FACE_NAME):
            face68 = _face68(body_track.model)
            if face68 is None:
                raise InputError("body_track", f"the track was made with {body_track.model.name}; face crops need "
                                               "the anny face points: use Track Body Mesh with body_model anny.")
            keypoints = body_track.driving.keypoints
            if images is None or images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
                raise InputError("images", "expected an IMAGE batch [frames, height, width, channels].")
            if (images.shape[0], images.shape[2], images.shape[1]) != (keypoints.frames, keypoints.width,
                                                                       keypoints.height):
                raise InputError("images", f"got {images.shape[0]} frame(s) of {images.shape[2]}x{images.shape[1]} "
                                           f"but the body track was made from {keypoints.frames} frame(s) of "
                                           f"{keypoints.width}x{keypoints.height}; connect the same frames "
                                           "that went into Track Body Mesh.")
            rgb = images[..., :3] if images.shape[-1] != 1 else images.expand(-1, -1, -1, 3)
            boxes = smooth_boxes(face_boxes(driving_face_points(body_track, face68), scale), smoothing)
            crops = crop_faces(rgb.cpu(), boxes, size)
        return io.NodeOutput(crops.to(mm.intermediate_device()), ui=with_images(clip_preview(crops)))
