"""ComfyUI adapters: schemas, type conversion, progress and errors. No math lives here."""
from __future__ import annotations

from comfy_api.latest import ComfyExtension, io
from typing_extensions import override

from .camera_files import LoadCameraTrajectory, SaveCameraTrajectory
from .camera_trajectory import CameraTrajectoryNode
from .model_loader import LoadModel
from .plucker_rays import PluckerRayMaps
from .sampler import Sampler

NODES: list[type[io.ComfyNode]] = [
    CameraTrajectoryNode,
    LoadCameraTrajectory,
    SaveCameraTrajectory,
    PluckerRayMaps,
    LoadModel,
    Sampler,
]


class FactorPortraitExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES
