"""Node "FactorPortrait LoRA": a Wan 2.1 LoRA file on the FactorPortrait model (stackable)."""
from __future__ import annotations

import dataclasses
import logging

from comfy_api.latest import io

from ..models.lora import read_lora
from .errors import reported_as
from .model_folders import resolve, weight_files
from .types import Model

NAME = "FactorPortrait LoRA"
LORAS = "loras"  # ComfyUI's own folder


class LoraNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitLoRA",
            display_name=NAME,
            category="FactorPortrait/model",
            description=(
                "Applies a Wan 2.1 LoRA to the FactorPortrait model, like ComfyUI's Load LoRA "
                "(model only). Chain several to stack them. Reads the formats of ComfyUI, "
                "kohya/musubi-tuner, diffusers, PEFT, LyCORIS (LoHa, LoKr) and full "
                "differences (.diff/.diff_b, as in lightx2v's step-distill files), and the "
                "pack's own trainer. Keys that fit no layer are listed in info."
            ),
            inputs=[
                Model.Input("model", tooltip="From FactorPortrait Load Model, or another FactorPortrait LoRA node."),
                io.Combo.Input("lora_name", options=weight_files(LORAS), tooltip=(
                    "A LoRA file (.safetensors) from models/loras, made for a Wan 2.1 model of "
                    "the same size as the loaded one.")),
                io.Float.Input("strength_model", default=1.0, min=-100.0, max=100.0, step=0.01, tooltip=(
                    "Multiplier of the LoRA's change (1: as trained; 0: off; negative: reversed).")),
            ],
            outputs=[
                Model.Output(display_name="model", tooltip="The model with this LoRA applied while it runs."),
                io.String.Output(display_name="info", tooltip="Layers changed, and every key not applied, by name."),
            ],
        )

    @classmethod
    def execute(cls, model, lora_name: str, strength_model: float) -> io.NodeOutput:
        with reported_as(NAME):
            path = resolve(LORAS, lora_name, "lora_name")
            lora = read_lora(path, model.model, "lora_name")
        info = lora.summary()
        if lora.unmatched or lora.unsupported or lora.errors:
            logging.warning("%s: not everything in %s was applied:\n%s", NAME, lora_name, info)
        if strength_model == 0:
            return io.NodeOutput(model, info + "\nstrength 0: not applied")
        return io.NodeOutput(dataclasses.replace(model, loras=model.loras + ((lora, strength_model),)), info)

