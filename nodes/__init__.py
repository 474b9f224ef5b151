"""ComfyUI adapters: schemas, type conversion, progress and errors. No math lives here."""
from __future__ import annotations

from comfy_api.latest import ComfyExtension, io
from typing_extensions import override

from .attention_compile import AttentionCompileNode
from .avatar import BuildAvatar, RenderAvatar
from .camera_files import LoadCameraTrajectory, SaveCameraTrajectory
from .camera_trajectory import CameraTrajectoryNode
from .evaluate_controls import EvaluateControls
from .expression_encoders import LoadExpressionEncoder
from .expression_keyframes import ExpressionKeyframes
from .extract_expression import ExtractExpression
from .lora import LoraNode
from .model_loader import LoadModel
from .plucker_rays import PluckerRayMaps
from .render_normal_maps import RenderNormalMaps
from .retarget_expression import RetargetExpression
from .sampler import Sampler
from .step_cache import StepCacheNode
from .track_body_mesh import TrackBodyMesh
from .wan_controls import FaceVideo, WanControls

NODES: list[type[io.ComfyNode]] = [
    CameraTrajectoryNode,
    LoadCameraTrajectory,
    SaveCameraTrajectory,
    PluckerRayMaps,
    TrackBodyMesh,
    RenderNormalMaps,
    BuildAvatar,
    RenderAvatar,
    WanControls,
    FaceVideo,
    LoadExpressionEncoder,
    ExtractExpression,
    RetargetExpression,
    ExpressionKeyframes,
    LoadModel,
    LoraNode,
    AttentionCompileNode,
    StepCacheNode,
    Sampler,
    EvaluateControls,
]


class FactorPortraitExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES
