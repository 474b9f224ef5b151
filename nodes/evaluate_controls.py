"""Node "FactorPortrait Evaluate Controls": generated frames + their controls -> a table and a plot."""
from __future__ import annotations

import json

from comfy_api.latest import io

from ..models.errors import InputError
from ..models.evaluation.head_pose import head_rotations
from ..models.evaluation.measure import measure_clip, summarize
from ..models.evaluation.report import format_table, plot_results
from .errors import reported_as
from .types import BodyTrack, Camera, Expression, ExpressionEncoder

NAME = "FactorPortrait Evaluate Controls"


def _frames(images, name: str, frames: int | None = None):
    if images is None or images.ndim != 4 or images.shape[-1] < 3:
        raise InputError(name, f"expected an IMAGE batch [frames, height, width, 3], got "
                               f"{None if images is None else list(images.shape)}.")
    if frames is not None and images.shape[0] != frames:
        raise InputError(name, f"has {images.shape[0]} frames but the generated video has {frames}; "
                               "give the frames of the same clip.")
    return images[..., :3]


class EvaluateControls(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitEvaluateControls",
            display_name=NAME,
            category="FactorPortrait/evaluation",
            description=(
                "Measures how well generated frames follow the controls that drove them: the expression "
                "measured by the built-in ARKit encoder against the driving codes (MAE, Pearson per "
                "channel), the head tracked by Track Body Mesh's fit against the body track's head "
                "rotation, and with ground-truth frames PSNR, SSIM and (with the body mask) the "
                "background PSNR. Connect what you have; each measure needs its inputs."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The generated frames (VAE Decode)."),
                ExpressionEncoder.Input("encoder", optional=True, tooltip=(
                    "The built-in anny ARKit-52 encoder (Load Expression Encoder), to measure the expression.")),
                Expression.Input("expression", optional=True, tooltip="The driving codes given to the sampler."),
                BodyTrack.Input("body_track", optional=True, tooltip=(
                    "The body track whose normal maps drove the sampler: the true head pose.")),
                Camera.Input("camera", optional=True, tooltip=(
                    "The camera trajectory the video was generated with (default: the body track's camera).")),
                io.Image.Input("ground_truth", optional=True, tooltip="True frames of the same clip, for PSNR / SSIM."),
                io.Mask.Input("body_mask", optional=True, tooltip=(
                    "1 on the body (Render Normal Maps' mask): the background PSNR is measured elsewhere.")),
            ],
            outputs=[
                io.String.Output(display_name="table", tooltip="The figures as a Markdown table."),
                io.Image.Output(display_name="plot", tooltip="The figures as bars."),
                io.String.Output(display_name="metrics", tooltip="The figures as JSON."),
            ],
        )

    @classmethod
    def execute(cls, images, encoder=None, expression=None, body_track=None, camera=None, ground_truth=None,
                body_mask=None) -> io.NodeOutput:
        with reported_as(NAME):
            frames = _frames(images, "images")
            count = frames.shape[0]
            truth = _frames(ground_truth, "ground_truth", count) if ground_truth is not None else None
            if truth is not None and truth.shape != frames.shape:
                raise InputError("ground_truth", f"is {list(truth.shape)}, the generated frames are "
                                                 f"{list(frames.shape)}; resize one to the other first.")
            mask = None
            if body_mask is not None:
                if body_mask.shape != frames.shape[:3]:
                    raise InputError("body_mask", f"is {list(body_mask.shape)}, expected {list(frames.shape[:3])}.")
                if truth is None:
                    raise InputError("ground_truth", "the background PSNR needs the true frames too.")
                mask = body_mask
            arkit, driving = None, None
            if expression is not None:
                arkit = getattr(encoder, "arkit", None)
                if arkit is None:
                    raise InputError("encoder", "measuring the expression needs the built-in anny ARKit-52 "
                                                "encoder (Load Expression Encoder): its channels have names.")
                if expression.labels is None:
                    raise InputError("expression", "codes without channel names cannot be compared per "
                                                   "channel; use the anny ARKit-52 codes.")
                driving = expression.resampled(count).codes
            rotation, model, fov = None, None, None
            view = camera or (body_track.camera if body_track is not None else None)
            if body_track is not None:
                if body_track.frames != count:
                    raise InputError("body_track", f"has {body_track.frames} frames, the video {count}.")
                if view.num_frames not in (1, count):
                    raise InputError("camera", f"has {view.num_frames} frames, the video {count}.")
                model = body_track.model
                rotation = head_rotations(model, body_track.params, view)
            if view is not None:
                fov = float(view.fov[0])
            if driving is None and rotation is None and truth is None:
                raise InputError("images", "nothing to measure: connect the expression (with the encoder), the "
                                           "body track or the ground-truth frames.")
            measured = measure_clip(frames, driving_expression=driving, head_rotation=rotation, ground_truth=truth,
                                    body_mask=mask, encoder=arkit, body_model=model, fov_deg=fov)
            results = {"generated": summarize([measured])}
        return io.NodeOutput(format_table(results), plot_results(results), json.dumps(results["generated"]))
