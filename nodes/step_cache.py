"""Node "FactorPortrait Step Cache": skip the blocks on steps whose input barely changed."""
from __future__ import annotations

import dataclasses

from comfy_api.latest import io

from ..models.sampling.step_cache import StepCacheSettings
from .errors import reported_as
from .types import Model

NAME = "FactorPortrait Step Cache"


class StepCacheNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitStepCache",
            display_name=NAME,
            category="FactorPortrait/model",
            description=(
                "EasyCache/TeaCache-style step caching for the FactorPortrait Sampler: on steps "
                "where the transformer's input barely changed since the last computed step, "
                "reuse that step's residual instead of running the blocks. Higher threshold: "
                "faster, further from the uncached result (docs/speed_and_loras.md: measured trade-off)."
            ),
            inputs=[
                Model.Input("model", tooltip="From FactorPortrait Load Model (or a LoRA node)."),
                io.Float.Input("threshold", default=0.2, min=0.0, max=1.0, step=0.005, tooltip=(
                    "Predicted relative change of the blocks' output allowed to build up before "
                    "they run again. 0: off.")),
                io.Float.Input("start", default=0.2, min=0.0, max=1.0, step=0.01, tooltip=(
                    "Fraction of the steps that always run in full first (they set the layout).")),
                io.Float.Input("end", default=1.0, min=0.0, max=1.0, step=0.01, tooltip=(
                    "Fraction of the steps after which every step runs in full again.")),
            ],
            outputs=[Model.Output(display_name="model", tooltip="The model, sampled with step caching.")],
        )

    @classmethod
    def execute(cls, model, threshold: float, start: float, end: float) -> io.NodeOutput:
        with reported_as(NAME):
            settings = StepCacheSettings(threshold, start, end) if threshold > 0 else None
        return io.NodeOutput(dataclasses.replace(model, step_cache=settings))
