"""Node "FactorPortrait Track Body Mesh": driving frames -> FACTORPORTRAIT_BODY_TRACK."""
from __future__ import annotations

import comfy.model_management as mm
from comfy_api.latest import io

from ..models.errors import InputError
from ..models.tracking.body_track import track_body
from ..models.tracking.keypoints import Keypoints2D, from_pose_keypoint
from ..models.tracking.mediapipe_detector import detect_landmarks
from ..models.tracking.preview import tracking_overlay
from .body_models import ANNY_CHOICE, BODY_MODELS, load_body_model
from .errors import reported_as
from .ui_previews import animated_preview, with_images
from .progress import comfy_progress
from .types import BodyTrack, Camera, PoseKeypoint

NAME = "FactorPortrait Track Body Mesh"
DEFAULT_ITERATIONS = 30


def _check_images(images, name: str) -> None:
    if images is None or images.ndim != 4 or images.shape[0] < 1 or images.shape[-1] not in (1, 3, 4):
        shape = None if images is None else list(images.shape)
        raise InputError(name, f"expected an IMAGE batch [frames, height, width, 1/3/4 channels], got {shape}.")


def _landmarks(images, pose_keypoint, name: str, video: bool) -> Keypoints2D:
    """The landmarks of ``images``: from the POSE_KEYPOINT input when connected, else MediaPipe."""
    _check_images(images, name)
    frames, height, width = images.shape[:3]
    if pose_keypoint is None:
        return detect_landmarks(images, video=video, progress=comfy_progress(frames))
    keypoints = from_pose_keypoint(pose_keypoint, width, height)
    if keypoints.frames != frames:
        raise InputError("pose_keypoint" if video else "reference_pose_keypoint",
                         f"has {keypoints.frames} frame(s) but '{name}' has {frames}; use the keypoints of "
                         f"the same frames.")
    return keypoints


class TrackBodyMesh(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitTrackBodyMesh",
            display_name=NAME,
            category="FactorPortrait/pose",
            description=(
                "Fits an upper-body mesh (head, neck, shoulders, torso, face actions) to every "
                "frame of the driving video at once, with temporal smoothness, from MediaPipe "
                "landmarks (built in, offline) or POSE_KEYPOINT from DWPose/OpenPose. With a "
                "reference image, the driving motion is retargeted onto the reference's body "
                "and seen from the reference's camera."
            ),
            inputs=[
                io.Image.Input("images", tooltip="Driving video frames (e.g. from Load Video + Get Video Components)."),
                io.Combo.Input("body_model", options=list(BODY_MODELS), default=ANNY_CHOICE, tooltip=(
                    "anny: open model, works offline (its cache is built in models/anny on first use, "
                    "1-2 minutes). SMPL-X: put your licensed SMPLX_<GENDER>.npz in models/smplx.")),
                io.Image.Input("reference_image", optional=True, tooltip=(
                    "The portrait to animate. Tracked the same way; with 'retarget' the driving "
                    "motion is applied to its body and view.")),
                io.Boolean.Input("retarget", default=True, tooltip=(
                    "With a reference image: the driving pose relative to its first frame, applied "
                    "to the reference's pose and shape, seen from the reference's camera. Off: the "
                    "driving actor's own body and camera.")),
                io.Float.Input("video_fov", default=0.0, min=0.0, max=179.0, step=0.5, tooltip=(
                    "Vertical field of view of the driving video's camera in degrees; 0 estimates "
                    "it (weakly determined by landmarks: give it when known; phones ~45-55).")),
                io.Float.Input("reference_fov", default=0.0, min=0.0, max=179.0, step=0.5, tooltip=(
                    "Vertical field of view of the reference photo's camera in degrees; 0 estimates it.")),
                io.Float.Input("smoothness", default=1.0, min=0.0, max=100.0, step=0.1, tooltip=(
                    "Temporal smoothness of the fitted motion; higher is steadier but lags fast motion.")),
                io.Int.Input("iterations", default=DEFAULT_ITERATIONS, min=4, max=500, tooltip=(
                    "Levenberg-Marquardt iterations per fit (an upper bound: each stage stops once "
                    "it stops improving).")),
                PoseKeypoint.Input("pose_keypoint", optional=True, tooltip=(
                    "Keypoints of the driving frames from DWPose/OpenPose (comfyui_controlnet_aux), "
                    "used instead of the built-in MediaPipe detector.")),
                PoseKeypoint.Input("reference_pose_keypoint", optional=True, tooltip=(
                    "Keypoints of the reference image, used instead of MediaPipe.")),
            ],
            outputs=[
                BodyTrack.Output(display_name="body_track", tooltip=(
                    "Per-frame body parameters (head, neck, torso, shoulders, face actions), the "
                    "shared shape, the body model and the camera.")),
                Camera.Output(display_name="camera", tooltip=(
                    "The view the track is seen from, one camera per frame: the reference's camera "
                    "when retargeted, else the video's. Render with it to match the reference image.")),
                io.Image.Output(display_name="overlay", tooltip=(
                    "The driving frames with the fitted mesh blended over them; detected landmarks "
                    "green, fitted red; a red border on frames that were filled in.")),
                io.String.Output(display_name="info", tooltip=(
                    "Fit errors, estimated fields of view, frames without a detection (filled in) "
                    "and other notes.")),
            ],
        )

    @classmethod
    def execute(cls, images, body_model: str, retarget: bool, video_fov: float, reference_fov: float,
                smoothness: float, iterations: int, reference_image=None, pose_keypoint=None,
                reference_pose_keypoint=None) -> io.NodeOutput:
        with reported_as(NAME):
            model = load_body_model(body_model, comfy_progress())  # first: a missing file fails fast
            driving = _landmarks(images, pose_keypoint, "images", video=True)
            reference = None
            if reference_image is not None:
                reference = _landmarks(reference_image[:1], reference_pose_keypoint, "reference_image", video=False)
            elif reference_pose_keypoint is not None:
                raise InputError("reference_pose_keypoint", "connect the reference_image too.")
            track = track_body(model, driving, reference, video_fov_deg=video_fov or None,
                               reference_fov_deg=reference_fov or None, retarget=retarget,
                               iterations=iterations, smoothness=smoothness, progress=comfy_progress())
            overlay = tracking_overlay(images, track.driving, model).to(mm.intermediate_device())
        return io.NodeOutput(track, track.camera, overlay, track.summary(), ui=with_images(animated_preview(overlay)))
