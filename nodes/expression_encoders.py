"""Node "FactorPortrait Load Expression Encoder" and the encoders it can load (cached)."""
from __future__ import annotations

import os

from comfy_api.latest import io

from ..models.expression.arkit_encoder import ArkitEncoder
from ..models.expression.encoder_file import load_image_encoder
from ..models.expression.encoders import ExpressionEncoder
from .body_models import anny_cache_folder
from .errors import reported_as
from .progress import comfy_progress
from .model_folders import EXPRESSION_ENCODERS, resolve, weight_files
from .types import ExpressionEncoder as ExpressionEncoderType

NAME = "FactorPortrait Load Expression Encoder"
BUILT_IN = "anny ARKit-52 (built in)"

_loaded: dict[tuple, ExpressionEncoder] = {}


def load_expression_encoder(choice: str) -> ExpressionEncoder:
    """The encoder of a combo choice, loaded once per file (and modification time)."""
    if choice == BUILT_IN:
        folder = anny_cache_folder()
        key = (choice, folder)
        if key not in _loaded:
            _loaded[key] = ExpressionEncoder.built_in(ArkitEncoder.from_cache(folder, comfy_progress()))
        return _loaded[key]
    path = resolve(EXPRESSION_ENCODERS, choice, "encoder")
    key = (choice, path, os.path.getmtime(path))
    if key not in _loaded:
        network, name = load_image_encoder(path, input_name="encoder")
        _loaded[key] = ExpressionEncoder.learned(network, name)
    return _loaded[key]


class LoadExpressionEncoder(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitLoadExpressionEncoder",
            display_name=NAME,
            category="FactorPortrait/expression",
            description=(
                "Chooses how driving frames become expression codes: the built-in anny ARKit-52 fit "
                "(52 named face actions in 0..1, offline, no weights) or a learned image encoder "
                "(.safetensors from models/factorportrait_expression). Use the encoder the "
                "FactorPortrait model was trained with."
            ),
            inputs=[
                io.Combo.Input("encoder", options=[BUILT_IN] + weight_files(EXPRESSION_ENCODERS), default=BUILT_IN,
                               tooltip=(
                                   "anny ARKit-52: fits anny's face actions to MediaPipe's face mesh, jointly "
                                   "with head pose and identity (first use builds its face correspondence in "
                                   "models/anny). Files: learned encoders from models/factorportrait_expression.")),
            ],
            outputs=[
                ExpressionEncoderType.Output(display_name="encoder", tooltip="The expression encoder."),
                io.String.Output(display_name="info", tooltip="The encoder's name and code size."),
            ],
        )

    @classmethod
    def execute(cls, encoder: str) -> io.NodeOutput:
        with reported_as(NAME):
            loaded = load_expression_encoder(encoder)
        kind = "anny ARKit face-action fit" if loaded.arkit is not None else "learned image encoder"
        return io.NodeOutput(loaded, f"{loaded.name}: {kind}, D={loaded.dim}.")
