"""Node "FactorPortrait Render Normal Maps": body track + camera -> normal maps and masks."""
from __future__ import annotations

import comfy.model_management as mm
from comfy_api.latest import io

from ..models.render.normal_maps import BACKENDS
from ..models.tracking.rendering import render_track_normals
from .errors import reported_as
from .ui_previews import animated_preview, with_images
from .progress import comfy_progress
from .types import BodyTrack, Camera

NAME = "FactorPortrait Render Normal Maps"


class RenderNormalMaps(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitRenderNormalMaps",
            display_name=NAME,
            category="FactorPortrait/pose",
            description=(
                "Renders the tracked upper-body mesh as camera-space normal maps (R = +x right, "
                "G = +y up, B = +z toward the viewer, encoded (n+1)/2; background 0.5, 0.5, 1.0) "
                "from any camera trajectory, plus the body's mask. A static camera follows every "
                "frame; a moving one must have as many frames as the track."
            ),
            inputs=[
                BodyTrack.Input("body_track", tooltip="From Track Body Mesh."),
                Camera.Input("camera", tooltip=(
                    "The viewpoint per frame: Track Body Mesh's camera (the reference view), or a "
                    "Camera Trajectory (a static one follows any number of frames).")),
                io.Int.Input("width", default=512, min=16, max=8192, step=16,
                             tooltip="Image width in pixels (the video's width; a multiple of 16 for Wan)."),
                io.Int.Input("height", default=512, min=16, max=8192, step=16,
                             tooltip="Image height in pixels (the video's height; a multiple of 16 for Wan)."),
                io.Combo.Input("backend", options=list(BACKENDS), default="torch", tooltip=(
                    "torch: the built-in rasterizer (CPU or GPU; also the faster one on the CPU). moderngl: "
                    "OpenGL (EGL) on the CPU, the same masks; a few pixels where two surfaces meet at "
                    "equal depth may differ; needs the 'opengl' extra.")),
            ],
            outputs=[
                io.Image.Output(display_name="normal_maps", tooltip="Normal maps [frames, height, width, 3]."),
                io.Mask.Output(display_name="mask", tooltip="1 on the body, 0 on the background."),
            ],
        )

    @classmethod
    def execute(cls, body_track, camera, width: int, height: int, backend: str) -> io.NodeOutput:
        device = mm.get_torch_device()
        with reported_as(NAME):
            progress = comfy_progress(max(body_track.frames, camera.num_frames))
            images, masks = render_track_normals(body_track, camera, width, height, backend=backend,
                                                 device="cpu" if backend == "moderngl" else device,
                                                 progress=progress)
        out = mm.intermediate_device()
        return io.NodeOutput(images.to(out), masks.to(out), ui=with_images(animated_preview(images)))
