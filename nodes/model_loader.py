"""Node "FactorPortrait Load Model" and the model handle it outputs."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from ..models.portrait.checkpoint import DEFAULT_EXPRESSION_DIM, STORAGE_DTYPES, LoadedModel, file_kind, load_model
from ..models.errors import InputError
from ..models.portrait.dit import FactorPortraitDiT
from ..models.lora import LoraFile, applied
from ..models.sampling.step_cache import StepCacheSettings
from ..models.wan.attention import use_attention
from ..models.wan.compile import CompileSettings, set_block_compile
from ..models.wan.offload import model_weight_bytes, stream_blocks
from .errors import reported_as
from .model_folders import DEFAULT_MODEL, DIFFUSION_MODELS, FACTORPORTRAIT, NONE, resolve, weight_files
from .types import Model

NAME = "FactorPortrait Load Model"
COMPUTE_DTYPES = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
STREAMING = ("auto", "off", "on")
PREFETCH = 1  # blocks copied ahead while one computes
INPUT_OF_ROLE = {"checkpoint": "factorportrait_weights", "control_weights": "factorportrait_weights"}


@dataclass
class FactorPortraitModel:
    """The value of ``FACTORPORTRAIT_MODEL``: a loaded model (kept on the offload device
    between runs), how to run it, and the LoRAs applied while it runs (the loaded weights
    themselves never change, so other branches of a graph see the model without them)."""

    loaded: LoadedModel
    load_device: torch.device
    offload_device: torch.device
    streaming: str  # "auto" | "off" | "on"
    loras: tuple[tuple[LoraFile, float], ...] = field(default=())  # (file, strength), in order
    attention: str = "sdpa"  # models.wan.attention.BACKENDS
    compile: CompileSettings | None = None  # torch.compile of the blocks (not when streamed)
    step_cache: StepCacheSettings | None = None  # read by the Sampler

    @property
    def model(self) -> FactorPortraitDiT:
        return self.loaded.model

    @contextlib.contextmanager
    def running(self, activation_bytes: int = 0):
        """Put the model on the load device for the block (streaming its blocks when they do
        not fit), with its LoRAs applied (``models.lora.applied``), its attention backend and
        compiled blocks, and back on the offload device afterwards without the LoRAs, also
        after an error. Streamed blocks run eagerly (their weights change at every call)."""
        device = self.load_device
        weights = model_weight_bytes(self.model)
        stream = self.streaming == "on"
        if self.streaming == "auto" and device.type == "cuda":
            stream = weights.total + activation_bytes > mm.get_free_memory(device)
        resident = weights.resident(PREFETCH if stream else None)
        mm.free_memory(resident + activation_bytes, device)
        set_block_compile(self.model.blocks, None if stream else self.compile)
        try:
            with use_attention(self.attention), applied(self.model, list(self.loras), hooks=stream):
                if stream:
                    with stream_blocks(self.model, device, prefetch=PREFETCH):
                        yield device
                else:
                    self.model.to(device)
                    yield device
        finally:
            self.model.to(self.offload_device)
            mm.soft_empty_cache()


def _compute_dtype(choice: str, device: torch.device) -> torch.dtype:
    if COMPUTE_DTYPES[choice] is not None:
        return COMPUTE_DTYPES[choice]
    if device.type == "cpu":
        return torch.float32
    return torch.bfloat16 if mm.should_use_bf16(device) else torch.float16


class LoadModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FactorPortraitLoadModel",
            display_name=NAME,
            category="FactorPortrait/model",
            description=(
                "Loads the FactorPortrait video DiT: a full FactorPortrait checkpoint, or a Wan "
                "2.1 base model plus FactorPortrait control weights, or a Wan 2.1 base model "
                "alone (controls untrained, with a warning)."
            ),
            inputs=[
                io.Combo.Input("factorportrait_weights", options=weight_files(FACTORPORTRAIT) + [NONE],
                               default=(weight_files(FACTORPORTRAIT) + [NONE])[0], tooltip=(
                                   "A full FactorPortrait checkpoint or a control-weights file from "
                                   "models/factorportrait (.safetensors); first: the shipped "
                                   f"demonstration model {DEFAULT_MODEL} (synthetic avatars, 128x128). "
                                   "'none' with a base model: untrained controls.")),
                io.Combo.Input("base_model", options=[NONE] + weight_files(DIFFUSION_MODELS),
                               default=NONE, tooltip=(
                                   "A Wan 2.1 DiT from models/diffusion_models (original or ComfyUI "
                                   "layout), needed with a control-weights file; 'none' with a full "
                                   "checkpoint.")),
                io.Combo.Input("weight_dtype", options=list(STORAGE_DTYPES), default="default", tooltip=(
                    "Storage of the large Linear weights: as in the file, bf16, fp16 or fp8 "
                    "(e4m3fn, half the memory of bf16). Compute stays in compute_dtype.")),
                io.Combo.Input("compute_dtype", options=list(COMPUTE_DTYPES), default="auto", tooltip=(
                    "auto: bf16 on GPUs that support it, fp16 on older GPUs, fp32 on the CPU.")),
                io.Combo.Input("block_streaming", options=list(STREAMING), default="auto", tooltip=(
                    "Keep the transformer blocks in CPU memory and stream them to the GPU one by "
                    "one (the 14B model on a 24 GB card). auto: only when the model does not fit "
                    "in free GPU memory.")),
                io.Int.Input("expression_dim", default=DEFAULT_EXPRESSION_DIM, min=1, max=4096, tooltip=(
                    "Expression code size for a base model loaded without FactorPortrait weights "
                    "(52 = the ARKit face actions of the default encoder). Checkpoints record "
                    "their own.")),
            ],
            outputs=[
                Model.Output(display_name="model", tooltip="The FactorPortrait model."),
                io.String.Output(display_name="info", tooltip="What was loaded, and any warnings."),
            ],
        )

    @classmethod
    def execute(cls, factorportrait_weights: str, base_model: str, weight_dtype: str,
                compute_dtype: str, block_streaming: str, expression_dim: int) -> io.NodeOutput:
        with reported_as(NAME):
            fp_path = None if factorportrait_weights == NONE else resolve(
                FACTORPORTRAIT, factorportrait_weights, "factorportrait_weights")
            base_path = None if base_model == NONE else resolve(DIFFUSION_MODELS, base_model, "base_model")
            if fp_path is None and base_path is None:
                raise InputError("factorportrait_weights", "choose a FactorPortrait checkpoint, or "
                                 "a Wan 2.1 base_model (optionally with FactorPortrait control weights).")
            kind = file_kind(fp_path, "factorportrait_weights") if fp_path else None
            if fp_path and kind not in ("full", "controls"):
                raise InputError("factorportrait_weights", f"{factorportrait_weights} is not a "
                                 "FactorPortrait checkpoint or control-weights file (no FactorPortrait "
                                 "metadata). A Wan 2.1 base file goes into base_model, from the "
                                 "diffusion_models folder.")
            if kind == "full" and base_path:
                raise InputError("base_model", f"{factorportrait_weights} is a full checkpoint that "
                                 "already holds the base weights; set base_model to 'none'.")
            device, offload = mm.get_torch_device(), mm.unet_offload_device()
            dtype = _compute_dtype(compute_dtype, device)
            storage = STORAGE_DTYPES[weight_dtype]
            if storage is not None and storage.itemsize < 2 and device.type == "cpu":
                logging.info("%s: fp8 weights on the CPU are cast to %s at every layer (slow).", NAME, dtype)
            try:
                loaded = load_model(
                    checkpoint=fp_path if kind == "full" else None,
                    base=base_path, controls=fp_path if kind == "controls" else None,
                    expression_dim=expression_dim, dtype=dtype, storage_dtype=storage, device=offload)
            except InputError as e:  # load_model's roles -> this node's inputs
                raise InputError(INPUT_OF_ROLE.get(e.input_name, e.input_name), e.message) from None
        for warning in loaded.warnings:
            logging.warning("%s: %s", NAME, warning)
        config = loaded.model.config
        info = "\n".join([
            f"Wan 2.1 {config.model_type} DiT: dim {config.dim}, {config.num_layers} layers, "
            f"{config.num_heads} heads; expression codes D={loaded.expression_dim}"
            + (f" from encoder '{loaded.expression_encoder}'" if loaded.expression_encoder else ""),
            f"compute {str(dtype).removeprefix('torch.')}, weights "
            f"{weight_dtype}; files: " + ", ".join(f"{k}={v}" for k, v in loaded.sources.items()),
            *[f"WARNING: {w}" for w in loaded.warnings],
        ])
        model = FactorPortraitModel(loaded, device, offload, block_streaming)
        return io.NodeOutput(model, info)
