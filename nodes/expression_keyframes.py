"""Node "FactorPortrait Expression Keyframes": expression codes written by hand."""
from __future__ import annotations

from comfy_api.latest import io

from ..models.expression.keyframes import expression_from_keyframes
from ..models.expression.plot import expression_plot
from .errors import reported_as
from .ui_previews import expression_curves
from .types import Expression

NAME = "FactorPortrait Expression Keyframes"
EXAMPLE = """{"interpolation": "smooth", "keyframes": [
 {"frame": 0},
 {"frame": 20, "jawOpen": 0.5, "mouthSmile": 0.3},
 {"frame": 30, "eyeBlink": 1.0},
 {"frame": 34, "eyeBlink": 0.0},
 {"frame": 60, "jawOpen": 0.0, "mouthSmile": 0.8, "browInnerUp": 0.6},
 {"frame": 80, "mouthSmile": 0.0, "browInnerUp": 0.0}]}"""


class ExpressionKeyframes(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitExpressionKeyframes",
            display_name=NAME,
            category="FactorPortrait/expression",
            description=(
                "Animates a face without a driving video: keyframes of named ARKit face actions "
                "(weights 0..1), interpolated per frame into anny ARKit-52 expression codes."
            ),
            inputs=[
                io.Int.Input("frames", default=81, min=1, max=4097, step=4, tooltip=(
                    "Number of video frames (Wan needs 4k+1: 77, 81, 85, ...).")),
                io.String.Input("keyframes", multiline=True, default=EXAMPLE, tooltip=(
                    "JSON list of {frame, <action>: weight, ...} or {\"keyframes\": [...], "
                    "\"interpolation\": \"smooth\"|\"linear\"}. Actions are the 52 ARKit names "
                    "(jawOpen, eyeBlinkLeft, mouthSmileRight, browInnerUp, ...); a name without "
                    "Left/Right sets both sides. Unnamed actions keep their previous value (0 at first).")),
            ],
            outputs=[
                Expression.Output(display_name="expression", tooltip="Codes [frames, 52]."),
                io.Image.Output(display_name="preview", tooltip="The strongest channels over time."),
            ],
        )

    @classmethod
    def execute(cls, frames: int, keyframes: str) -> io.NodeOutput:
        with reported_as(NAME):
            expression = expression_from_keyframes(keyframes, frames)
            preview = expression_plot(expression)
        return io.NodeOutput(expression, preview, ui=expression_curves(expression))
