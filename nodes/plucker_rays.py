"""Node "FactorPortrait Plücker Ray Maps": camera -> ray maps for the DiT and for Wan."""
from __future__ import annotations

import comfy.model_management
from comfy_api.latest import io

from ..models.camera.preview import ray_direction_preview
from ..models.camera.plucker import check_image_size, latent_plucker_rays, wan_camera_embedding
from ..models.errors import InputError
from ..models.wan.latent_frames import check_frame_count
from .errors import reported_as
from .types import Camera, Rays

NAME = "FactorPortrait Plücker Ray Maps"


class PluckerRayMaps(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitPluckerRayMaps",
            display_name=NAME,
            category="FactorPortrait/camera",
            description=(
                "Plücker ray maps (o x d, d) of a camera trajectory: on the latent grid in "
                "Wan's 4-frame packing for the FactorPortrait sampler, and at full resolution "
                "as a WAN_CAMERA_EMBEDDING for ComfyUI's WanCameraImageToVideo."
            ),
            inputs=[
                Camera.Input("camera", tooltip="Camera trajectory; its frame count must be 4k+1."),
                io.Int.Input("width", default=832, min=16, max=8192, step=16,
                             tooltip="Video width in pixels, a multiple of 16."),
                io.Int.Input("height", default=480, min=16, max=8192, step=16,
                             tooltip="Video height in pixels, a multiple of 16."),
            ],
            outputs=[
                Rays.Output(display_name="rays", tooltip=(
                    "[1, 24, T_lat, H/8, W/8] rays at the latent cell centres, 4-frame packed.")),
                io.Image.Output(display_name="preview", tooltip=(
                    "World-space ray directions as colours (d+1)/2, one image per frame, "
                    "longer side at most 512 px.")),
                io.WanCameraEmbedding.Output(display_name="camera_embedding", tooltip=(
                    "[1, 24, T_lat, H, W] in ComfyUI's convention (poses relative to the "
                    "first frame), for WanCameraImageToVideo. (81 frames at 832x480 take 0.8 GB).")),
                io.Int.Output(display_name="width", tooltip="The width input, to wire into Wan nodes."),
                io.Int.Output(display_name="height", tooltip="The height input, to wire into Wan nodes."),
                io.Int.Output(display_name="length", tooltip="Number of video frames."),
            ],
        )

    @classmethod
    def execute(cls, camera, width: int, height: int) -> io.NodeOutput:
        device = comfy.model_management.intermediate_device()
        with reported_as(NAME):
            check_image_size(width, height)
            try:
                check_frame_count(camera.num_frames, "camera")
            except InputError as e:
                raise InputError("camera", f"{e.message} Set 'frames' on the camera node to one "
                                 "of them.") from None
            rays = latent_plucker_rays(camera, width, height, device)
            embedding = wan_camera_embedding(camera, width, height, device)
            preview = ray_direction_preview(camera, width, height).to(device)
        return io.NodeOutput(rays, preview, embedding, width, height, camera.num_frames)
