"""Node "FactorPortrait Attention & Compile": the attention kernel and torch.compile."""
from __future__ import annotations

import dataclasses

from comfy_api.latest import io

from ..models.wan.attention import BACKENDS, check_backend
from ..models.wan.compile import MODES, CompileSettings
from .errors import reported_as
from .types import Model

NAME = "FactorPortrait Attention & Compile"


class AttentionCompileNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitAttentionCompile",
            display_name=NAME,
            category="FactorPortrait/model",
            description=(
                "Chooses the attention kernel of the FactorPortrait DiT (PyTorch SDPA, "
                "SageAttention or FlashAttention, the last two when installed, on NVIDIA GPUs) "
                "and whether its transformer blocks run through torch.compile."
            ),
            inputs=[
                Model.Input("model", tooltip="From FactorPortrait Load Model (or a LoRA node)."),
                io.Combo.Input("attention", options=list(BACKENDS), default="sdpa", tooltip=(
                    "sdpa: PyTorch's, everywhere. sage: SageAttention (pip install sageattention). "
                    "flash: FlashAttention (pip install flash-attn). The last two are CUDA "
                    "kernels: on the CPU attention stays sdpa.")),
                io.Boolean.Input("compile", default=False, tooltip=(
                    "torch.compile each transformer block (the first run compiles, later runs of "
                    "the same size are faster; not with block streaming).")),
                io.Combo.Input("compile_mode", options=list(MODES), default="default", tooltip=(
                    "torch.compile mode (max-autotune: longer compile, sometimes faster).")),
                io.Boolean.Input("dynamic", default=False, tooltip=(
                    "Compile for any video size at once (fewer recompiles when sizes change).")),
            ],
            outputs=[Model.Output(display_name="model", tooltip="The model with these settings.")],
        )

    @classmethod
    def execute(cls, model, attention: str, compile: bool, compile_mode: str, dynamic: bool) -> io.NodeOutput:
        with reported_as(NAME):
            check_backend(attention)
            settings = CompileSettings(compile_mode, dynamic) if compile else None
        return io.NodeOutput(dataclasses.replace(model, attention=attention, compile=settings))
