"""Node "FactorPortrait Extract Expression": driving frames -> FACTORPORTRAIT_EXPRESSION."""
from __future__ import annotations

import comfy.model_management as mm
from comfy_api.latest import io

from ..models.errors import InputError
from ..models.expression.plot import expression_plot
from ..models.tracking.keypoints import from_pose_keypoint
from .errors import reported_as
from .ui_previews import expression_curves
from .progress import comfy_progress
from .types import Expression, ExpressionEncoder, PoseKeypoint

NAME = "FactorPortrait Extract Expression"


class ExtractExpression(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitExtractExpression",
            display_name=NAME,
            category="FactorPortrait/expression",
            description=(
                "One identity- and pose-free expression code per driving frame, with the chosen "
                "encoder. Frames without a face are filled from their neighbours and listed in "
                "info; a video without any face is an error."
            ),
            inputs=[
                ExpressionEncoder.Input("encoder", tooltip="From Load Expression Encoder."),
                io.Image.Input("images", tooltip="Driving frames (or the reference image, for its resting face)."),
                io.Float.Input("fov", default=0.0, min=0.0, max=179.0, step=0.5, tooltip=(
                    "Vertical field of view of the camera in degrees (ARKit fit); 0 estimates it.")),
                PoseKeypoint.Input("pose_keypoint", optional=True, tooltip=(
                    "DWPose/OpenPose keypoints of the frames, used instead of MediaPipe (ARKit: fewer "
                    "points, so blinks and brows are coarse).")),
            ],
            outputs=[
                Expression.Output(display_name="expression", tooltip="Codes [frames, D] and the encoder's name."),
                io.Image.Output(display_name="preview", tooltip="The strongest channels over time."),
                io.String.Output(display_name="info", tooltip="Filled frames, field of view, notes."),
            ],
        )

    @classmethod
    def execute(cls, encoder, images, fov: float, pose_keypoint=None) -> io.NodeOutput:
        with reported_as(NAME):
            if images is None or images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
                raise InputError("images", f"expected an IMAGE batch [frames, height, width, 1/3/4], got "
                                 f"{None if images is None else list(images.shape)}.")
            keypoints = None
            if pose_keypoint is not None:
                keypoints = from_pose_keypoint(pose_keypoint, images.shape[2], images.shape[1])
                if keypoints.frames != images.shape[0]:
                    raise InputError("pose_keypoint", f"has {keypoints.frames} frame(s) but 'images' has "
                                     f"{images.shape[0]}; use the keypoints of the same frames.")
            progress = comfy_progress(images.shape[0])
            codes, notes = encoder.encode(images, keypoints, fov_degrees=fov or None, video=images.shape[0] > 1,
                                          device=mm.get_torch_device(), progress=progress)
            preview = expression_plot(codes)
        info = "\n".join([f"{codes.num_frames} frame(s), encoder '{codes.encoder}', D={codes.dim}.", *notes])
        return io.NodeOutput(codes, preview, info, ui=expression_curves(codes))
