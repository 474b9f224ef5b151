"""Node "FactorPortrait Retarget Expression": shape expression codes for the reference."""
from __future__ import annotations

from comfy_api.latest import io

from ..models.expression.plot import expression_plot
from ..models.expression.retarget import NEUTRAL_MODES, REGIONS, SMOOTHING, parse_regions, retarget_expression
from .errors import reported_as
from .types import Expression

NAME = "FactorPortrait Retarget Expression"


class RetargetExpression(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitRetargetExpression",
            display_name=NAME,
            category="FactorPortrait/expression",
            description=(
                "Shapes per-frame expression codes: removes the driving actor's resting face and "
                "adds the reference's, scales the intensity, takes face regions from a second "
                "take, smooths over time and keeps face-action weights in 0..1."
            ),
            inputs=[
                Expression.Input("expression", tooltip="The driving codes (Extract Expression or Expression Keyframes)."),
                io.Float.Input("scale", default=1.0, min=-5.0, max=5.0, step=0.05, tooltip=(
                    "Intensity around the neutral face: 0 = neutral, 1 = as driven, 1.5 = exaggerated.")),
                io.Combo.Input("neutral", options=list(NEUTRAL_MODES), default="first frame", tooltip=(
                    "The driving actor's resting face, subtracted before scaling: none; the first frame "
                    "(actor starts neutral); or per channel the lowest 5% of the video.")),
                io.Combo.Input("smoothing", options=list(SMOOTHING), default="none", tooltip=(
                    "Temporal filter: Savitzky-Golay (keeps peaks such as blinks) or one-euro "
                    "(adaptive, steady when still, little lag in fast motion).")),
                io.Int.Input("window", default=5, min=1, max=101, tooltip=(
                    "Smoothing strength in frames: the Savitzky-Golay window (made odd), or a one-euro "
                    "cutoff of fps/window Hz when still.")),
                io.Float.Input("fps", default=15.0, min=1.0, max=240.0, step=1.0,
                               tooltip="Frame rate of the codes (for one-euro); the paper's clips are 15 fps."),
                io.Boolean.Input("clamp", default=True, tooltip="Keep bounded codes (face-action weights) in 0..1."),
                io.String.Input("regions_from_other", default="", tooltip=(
                    "Face regions to take from 'other', e.g. 'mouth, jaw' (one of: "
                    + ", ".join(REGIONS) + "). Needs codes with named channels (anny ARKit-52).")),
                Expression.Input("reference_expression", optional=True, tooltip=(
                    "Codes of the reference image: its resting face is added back (else the encoder's zero).")),
                Expression.Input("other", optional=True, tooltip="A second sequence for regions_from_other."),
            ],
            outputs=[
                Expression.Output(display_name="expression", tooltip="The shaped codes."),
                io.Image.Output(display_name="preview", tooltip="The strongest channels over time."),
            ],
        )

    @classmethod
    def execute(cls, expression, scale: float, neutral: str, smoothing: str, window: int, fps: float,
                clamp: bool, regions_from_other: str, reference_expression=None, other=None) -> io.NodeOutput:
        with reported_as(NAME):
            out = retarget_expression(expression, scale=scale, neutral=neutral, reference=reference_expression,
                                      other=other, regions_from_other=parse_regions(regions_from_other),
                                      smoothing=smoothing, window=window, fps=fps, clamp=clamp)
            preview = expression_plot(out)
        return io.NodeOutput(out, preview)
